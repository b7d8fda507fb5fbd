"""labs/README.md, the lecture-to-lab map, keeps up with the labs: every week
has its row, every graded function is listed with its track, and every week has
its running times."""

import re

from mlsafety.weeks import all_labs, graded_functions

from .conftest import ROOT

MAP = ROOT / "labs" / "README.md"


def lab_key(cell: str) -> str:
    """``3`` -> ``week03`` (a course week), ``S1`` -> ``security1`` (the security track)."""
    return f"security{int(cell[1:])}" if cell.upper().startswith("S") else f"week{int(cell):02d}"


def rows(heading: str) -> dict[str, str]:
    text = MAP.read_text()
    section = text[text.index(heading) :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    found = {}
    for line in section.splitlines():
        match = re.match(r"\|\s*(S?\d+)\s*\|", line)
        if match:
            found[lab_key(match.group(1))] = line
    return found


def test_every_week_and_every_graded_function_is_on_the_map():
    lines = rows("## Lectures")
    assert set(lines) == set(all_labs()), "labs/README.md: one row per lab, no more"
    for number, week_dir in all_labs().items():
        line = lines[number]
        assert f"]({week_dir.name}/README.md)" in line, f"{number}: link its README"
        listed = re.findall(r"(\*?)`(\w+)`\*?", line.split("|")[4])
        on_map = {name: "stretch" if star else "core" for star, name in listed}
        assert on_map == graded_functions(week_dir), (
            f"{number}: the map's functions and tracks differ from the specs' GRADED: "
            f"map {on_map}, specs {graded_functions(week_dir)}"
        )


def test_every_week_has_its_running_times():
    lines = rows("## Time to run")
    assert set(lines) == set(all_labs())
    for number, line in lines.items():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 5 and all(cells), f"{number}: data, smoke, cpu, gpu"
        assert re.search(r"\d+ s", cells[2]), f"{number}: the smoke time in seconds"
