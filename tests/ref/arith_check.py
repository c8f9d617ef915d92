#!/usr/bin/python3
"""Independent check of arith-gen's documents (tests/t_arith.sh).

usage: arith_check.py TRAIN.jsonl [EVAL.jsonl] [--require-variants]

Parses every document's text back with its own patterns (every phrasing, ASCII
and full-width digits), solves the problem it states, and fails unless the
answer at the end of the text is right.  For EVAL (arith-gen --eval) it also
checks the fields (text = prompt + answer, kind, digits), that no problem is
there twice, and that no EVAL problem is a TRAIN problem: a problem is (kind,
operation, position of x, the two operands), whatever its phrasing or digits.
--require-variants: fail unless every phrasing, kind, negative numbers,
full-width digits and each digit count up to the largest were seen.
Prints a summary; exit 0 when all is well, 1 with the first problems listed.
"""
import json
import re
import sys

FULL = str.maketrans("０１２３４５６７８９－", "0123456789-")
NUM = r"([-－]?[0-9０-９]+)"
OPERAND = r"(\(" + NUM[1:-1] + r"\)|" + NUM[1:-1] + r")"   # after an operator: (-5) or 5
SIDE = r"(x|\(" + NUM[1:-1] + r"\)|" + NUM[1:-1] + r")"
EQ = r"(x|" + NUM[1:-1] + r") ([+-]) " + SIDE + r" = " + NUM

PATTERNS = [  # (name, kind family, regex over the whole text)
    ("en-symbolic", "arith", re.compile("^" + NUM + r" ([+-]) " + OPERAND + " = " + NUM + "$")),
    ("en-words", "arith", re.compile("^What is " + NUM + " (plus|minus) " + NUM + r"\? Answer: " + NUM + "$")),
    ("zh-words", "arith", re.compile("^" + NUM + "(加|减)" + NUM + "等于多少？答案：" + NUM + "$")),
    ("zh-symbolic", "arith", re.compile("^计算：" + NUM + r" ([+-]) " + OPERAND + " = " + NUM + "$")),
    ("en-solve", "solve", re.compile("^Solve for x: " + EQ + r"\. x = " + NUM + "$")),
    ("en-if", "solve", re.compile("^If " + EQ + r", what is x\? Answer: " + NUM + "$")),
    ("zh-solve", "solve", re.compile("^解方程：" + EQ + "，x = " + NUM + "$")),
    ("zh-given", "solve", re.compile("^已知" + EQ + "，求x。答案：" + NUM + "$")),
]


class Bad(Exception):
    pass


def number(s, bracketed_ok):
    """int of a number as written; checks its form (no leading zeros, no -0,
    brackets exactly around negative operands where brackets are used)."""
    br = s.startswith("(")
    if br:
        s = s[1:-1]
    v = s.translate(FULL)
    if not re.fullmatch(r"-?(0|[1-9][0-9]*)", v) or v == "-0":
        raise Bad("badly written number %r" % s)
    n = int(v)
    if bracketed_ok is not None and br != (n < 0):
        raise Bad("operand %r: a negative operand after an operator is bracketed, only it" % s)
    if br and bracketed_ok is None:
        raise Bad("bracketed number %r where none belongs" % s)
    return n, s


def parse(text):
    """-> (phrasing, kind, op, x_pos, p, q, answer, fullwidth, numbers)."""
    for name, family, rx in PATTERNS:
        m = rx.match(text)
        if not m:
            continue
        g = m.groups()
        written = []
        if family == "arith":
            if name in ("en-words", "zh-words"):
                (p, sp), word, (q, sq), (ans, sa) = number(g[0], None), g[1], number(g[2], None), number(g[3], None)
                op = "+" if word in ("plus", "加") else "-"
            else:
                (p, sp), op, (q, sq), (ans, sa) = number(g[0], None), g[1], number(g[2], True), number(g[3], None)
            written = [sp, sq, sa]
            if ans != (p + q if op == "+" else p - q):
                raise Bad("wrong answer %d to %d %s %d" % (ans, p, op, q))
            return name, "add" if op == "+" else "sub", op, 0, p, q, ans, written
        left, op, right, r_s, ans_s = g
        if (left == "x") == (right == "x"):
            raise Bad("an equation needs exactly one x")
        r, sr = number(r_s, None)
        ans, sa = number(ans_s, None)
        if left == "x":
            q, sq = number(right, True)
            x = r - q if op == "+" else r + q          # x + q = r ; x - q = r
            p, x_pos, written = x, 0, [sq, sr, sa]
        else:
            p, sp = number(left, None)
            x = r - p if op == "+" else p - r          # p + x = r ; p - x = r
            q, x_pos, written = x, 1, [sp, sr, sa]
        if ans != x:
            raise Bad("wrong answer %d to %s (x = %d)" % (ans, text, x))
        return name, "solve", op, x_pos, p, q, ans, written
    raise Bad("matches no phrasing")


def digits(n):
    return len(str(abs(n)))


def check_file(path, is_eval, stats, problems):
    keys = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
                text = rec["text"]
                name, kind, op, x_pos, p, q, ans, written = parse(text)
                full = [any(c in "０１２３４５６７８９－" for c in w) for w in written]
                if any(full) and not all(full):
                    raise Bad("full-width and ASCII digits mixed")
                if full[0] and name.startswith("en"):
                    raise Bad("full-width digits in an English phrasing")
                d = max(digits(p), digits(q))
                if is_eval:
                    pr, an = rec["prompt"], rec["answer"]
                    if pr + an != text or number(an, None)[0] != ans or not text.endswith(an):
                        raise Bad("prompt %r + answer %r is not the text" % (pr, an))
                    if rec["kind"] != kind or rec["digits"] != d:
                        raise Bad("fields kind=%r digits=%r, the text says %s, %d" % (rec["kind"], rec["digits"], kind, d))
                keys.append((kind, op, x_pos, p, q))
                for k in (name, kind, "digits %d" % d) + (("full-width",) if full[0] else ()) + \
                        (("negative",) if min(p, q) < 0 else ()):
                    stats[k] = stats.get(k, 0) + 1
            except (Bad, KeyError, ValueError) as e:
                problems.append("%s:%d: %s: %s" % (path, lineno, e, line.strip()[:120]))
    return keys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    require = "--require-variants" in sys.argv
    if not 1 <= len(args) <= 2:
        sys.exit(__doc__)
    problems, stats = [], {}
    train = check_file(args[0], False, stats, problems)
    print("%s: %d documents checked" % (args[0], len(train)))
    if len(args) == 2:
        ev = check_file(args[1], True, stats, problems)
        print("%s: %d held-out problems checked" % (args[1], len(ev)))
        if len(set(ev)) != len(ev):
            problems.append("%s: %d problems repeated" % (args[1], len(ev) - len(set(ev))))
        shared = set(ev) & set(train)
        print("problems shared by the two: %d" % len(shared))
        if shared:
            problems.append("held-out problems also in training: %s" % sorted(shared)[:5])
    print("seen: " + ", ".join("%s %d" % kv for kv in sorted(stats.items())))
    if require:
        maxd = max(int(k.split()[1]) for k in stats if k.startswith("digits "))
        want = [p[0] for p in PATTERNS] + ["add", "sub", "solve", "negative", "full-width"] + \
            ["digits %d" % d for d in range(1, maxd + 1)]
        problems += ["never seen: %s" % w for w in want if w not in stats]
    for p in problems[:20]:
        print("FAIL " + p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
