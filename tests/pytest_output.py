"""Reading a pytester run's output: the leaderboard section and the failures' text."""

import re


def leaderboard_section(result) -> list[str]:
    """The lines from the leaderboard's title up to the next ``=`` separator."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "ntkbench leaderboard (tier: smoke)" in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("=")), len(lines))
    return lines[start:end]


def failure_bodies(result) -> dict[str, list[str]]:
    """The text of each failure in the FAILURES section (captured output left out), by test id."""
    bodies, current = {}, None
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"=+ FAILURES =+", line))
    for line in lines[start + 1:]:
        header = re.fullmatch(r"_{3,} (\S+) _{3,}", line)
        if header:
            current = bodies.setdefault(header.group(1), [])
        elif line.startswith("=") or re.match(r"-+ Captured", line):
            current = None
        elif current is not None and line.strip():
            current.append(line)
    return bodies
