"""Print one closing line for `make test`: the stage times and the total counts.

usage: python scripts/test_summary.py JUNIT_DIR STAGE_TIMES_TSV
"""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(junit_dir: str, times: str) -> int:
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for xml in sorted(Path(junit_dir).glob("*.xml")):
        root = ET.parse(xml).getroot()
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        for s in suites:
            for key in totals:
                totals[key] += int(s.get(key, 0))
    print("\n== make test: time per stage")
    for line in Path(times).read_text().splitlines():
        name, secs, rc = line.split("\t")
        print(f"   {name:<45} {float(secs):8.1f} s   exit {rc}")
    failed = totals["failures"] + totals["errors"]
    passed = totals["tests"] - failed - totals["skipped"]
    print(f"make test: {passed} passed, {failed} failed, {totals['skipped']} skipped")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
