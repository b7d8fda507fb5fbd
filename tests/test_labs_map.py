"""labs/README.md, the lecture-to-lab map, keeps up with the labs: every week
has its row, every graded function is listed with its track, and every week has
its running times."""

import re

from mlsafety.weeks import all_weeks, graded_functions

from .conftest import ROOT

MAP = ROOT / "labs" / "README.md"


def rows(heading: str) -> dict[int, str]:
    text = MAP.read_text()
    section = text[text.index(heading) :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    found = {}
    for line in section.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|", line)
        if match:
            found[int(match.group(1))] = line
    return found


def test_every_week_and_every_graded_function_is_on_the_map():
    lines = rows("## Lectures")
    assert set(lines) == set(all_weeks()), "labs/README.md: one row per lab, no more"
    for number, week_dir in all_weeks().items():
        line = lines[number]
        assert f"]({week_dir.name}/README.md)" in line, f"week {number}: link its README"
        listed = re.findall(r"(\*?)`(\w+)`\*?", line.split("|")[4])
        on_map = {name: "stretch" if star else "core" for star, name in listed}
        assert on_map == graded_functions(week_dir), (
            f"week {number}: the map's functions and tracks differ from the specs' GRADED: "
            f"map {on_map}, specs {graded_functions(week_dir)}"
        )


def test_every_week_has_its_running_times():
    lines = rows("## Time to run")
    assert set(lines) == set(all_weeks())
    for number, line in lines.items():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 5 and all(cells), f"week {number}: data, smoke, cpu, gpu"
        assert re.search(r"\d+ s", cells[2]), f"week {number}: the smoke time in seconds"
