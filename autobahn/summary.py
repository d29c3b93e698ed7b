#!/usr/bin/env python3
"""Check Autobahn|Testsuite reports, with a table of outcomes per case group (1.* .. 13.*).

autobahn/run uses this when the shared autobahn-summary tool is not beside the repository; it
takes the same options. A case passes when its behavior is OK or INFORMATIONAL (NON-STRICT too,
unless --strict; UNIMPLEMENTED only with --allow-unimplemented) and its behaviorClose is neither
FAILED nor UNCLEAN. Exit 1 when a case fails, a report holds no case for an agent, or an agent ran
other than --expect cases; exit 2 when a report is missing.
"""
import argparse
import json
import os
import sys

BEHAVIORS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
COLUMNS = BEHAVIORS + ["other", "bad-close", "total"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="index.json or its directory")
    parser.add_argument("--strict", action="store_true", help="NON-STRICT cases fail")
    parser.add_argument("--allow-unimplemented", action="store_true",
                        help="UNIMPLEMENTED cases (no permessage-deflate: 12.*, 13.*) pass")
    parser.add_argument("--agent", help="check only this agent, and fail when it is absent")
    parser.add_argument("--expect", type=int, metavar="N", help="cases each agent must have run")
    args = parser.parse_args()

    failures = 0
    for path in args.paths:
        index = os.path.join(path, "index.json") if os.path.isdir(path) else path
        if not os.path.isfile(index):
            print("summary: no report at %s" % index, file=sys.stderr)
            return 2
        with open(index) as f:
            agents = json.load(f)
        if args.agent:
            agents = {args.agent: agents.get(args.agent, {})}
        if not any(agents.values()):
            # wstest writes "{}" when it could not reach the testee.
            print("%s: no test case results%s" % (index, " for " + args.agent if args.agent else ""))
            failures += 1
            continue
        for agent, cases in sorted(agents.items()):
            print("%s  agent=%s" % (index, agent))
            failures += check_agent(cases, args)
    return 1 if failures else 0


def check_agent(cases, args):
    """Prints the table for one agent's cases and returns how many problems it found."""
    groups, failed = {}, []
    for case_id in sorted(cases, key=case_key):
        result = cases[case_id]
        behavior = result.get("behavior")
        counts = groups.setdefault(case_id.split(".")[0], dict.fromkeys(COLUMNS, 0))
        counts[behavior if behavior in BEHAVIORS else "other"] += 1
        counts["bad-close"] += result.get("behaviorClose") in ("FAILED", "UNCLEAN")
        counts["total"] += 1
        if not passes(result, args):
            failed.append("%s(%s/%s)" % (case_id, behavior, result.get("behaviorClose")))

    widths = [max(len(column), 5) for column in COLUMNS]
    print_row("group", COLUMNS, widths)
    totals = dict.fromkeys(COLUMNS, 0)
    for group in sorted(groups, key=case_key):
        for column in COLUMNS:
            totals[column] += groups[group][column]
        print_row(group + ".*", [groups[group][column] for column in COLUMNS], widths)
    print_row("all", [totals[column] for column in COLUMNS], widths)

    problems = len(failed)
    if failed:
        print("  FAIL: %d case(s): %s" % (len(failed), " ".join(failed)))
    if args.expect is not None and totals["total"] != args.expect:
        print("  FAIL: ran %d cases, expected %d" % (totals["total"], args.expect))
        problems += 1
    if not problems:
        print("  PASS")
    return problems


def passes(result, args):
    if result.get("behaviorClose") in ("FAILED", "UNCLEAN"):
        return False
    behavior = result.get("behavior")
    return (behavior in ("OK", "INFORMATIONAL")
            or (behavior == "NON-STRICT" and not args.strict)
            or (behavior == "UNIMPLEMENTED" and args.allow_unimplemented))


def case_key(case_id):
    return tuple(int(part) if part.isdigit() else 0 for part in case_id.split("."))


def print_row(name, values, widths):
    print("  %-6s " % name + " ".join("%*s" % (w, v) for w, v in zip(widths, values)))


if __name__ == "__main__":
    sys.exit(main())
