# The self-check plugin (--impl, --functions, @graded and the per-function table)
# and the fixtures every week's specs share (gen, rng).
pytest_plugins = ["mlsafety.grading", "mlsafety.specs"]
