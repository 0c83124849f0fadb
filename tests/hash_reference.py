"""The `~` hash rules as the original alto applies them, in Python, for tests.

Usage: python3 hash_reference.py RULE... < lines > lines

Each RULE is a rule without its `~` (`users.email`, `*.address`); a rule
without a dot means the whole stream (`users` is `users.*`). Each input line
is read with json.loads (the last of duplicate keys wins, as in any Python
target); a RECORD's fields covered by a rule (the field a rule names and
everything below it) have every scalar leaf replaced by
md5(str(value).encode("utf-8")), lists element by element, objects walked
keeping their shape. Every line is printed back with json.dumps, so that
alto's output run through this script with no rules compares equal as text.
A line json.loads refuses prints `null`.
"""

import fnmatch
import hashlib
import json
import sys


def main():
    rules = [r if "." in r else r + ".*" for r in sys.argv[1:]]

    def covered(crumb):
        return any(fnmatch.fnmatchcase(crumb, r) for r in rules)

    def walk(value, crumb, cov):
        cov = cov or covered(crumb)
        if isinstance(value, dict):
            return {k: walk(v, crumb + "." + k, cov) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, crumb, cov) for v in value]
        if cov:
            return hashlib.md5(str(value).encode("utf-8")).hexdigest()
        return value

    def transform(msg):
        if (
            isinstance(msg, dict)
            and msg.get("type") == "RECORD"
            and isinstance(msg.get("stream"), str)
            and isinstance(msg.get("record"), dict)
        ):
            stream = msg["stream"]
            msg["record"] = {
                k: walk(v, stream + "." + k, False) for k, v in msg["record"].items()
            }
        return msg

    out = sys.stdout
    for line in sys.stdin.buffer:
        try:
            out.write(json.dumps(transform(json.loads(line))) + "\n")
        except (ValueError, RecursionError):
            # Not JSON, or a string no UTF-8 can hold (a lone surrogate).
            out.write("null\n")


if __name__ == "__main__":
    main()
