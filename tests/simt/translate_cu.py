#!/usr/bin/env python3
"""Rewrite a CUDA source file so that the host C++ compiler builds it for the emulated GPU.

    translate_cu.py IN.cu OUT.cpp

Only two constructs are rewritten, mechanically, and every line keeps its number (a #line
directive names the original file), so compiler messages, debug information and the
emulator's reports point into the real .cu file:

  kernel<<<grid, block[, smem[, stream]]>>>(args)
      -> ::saec_simt::launcher(kernel, "kernel", BOUNDS, __FILE__, __LINE__, grid, block...)(args)
     BOUNDS is the first argument of the kernel's __launch_bounds__ (0 without one), so the
     emulator can refuse a launch larger than the kernel was compiled for, as the GPU does.
  [extern] __shared__ [__align__(N)] T a[X][Y], b;
      -> SAEC_SIMT_SHARED(N, T, a, [X][Y]); SAEC_SIMT_SHARED(N, T, b, );
         (extern, dynamic: SAEC_SIMT_DYNAMIC_SHARED(T, a);)
     so that shared memory is per block, sized exactly (AddressSanitizer sees overruns),
     poisoned at block start, and known to the race check.

Anything it does not understand is an error naming the line: a launch or a __shared__ left
untranslated would compile into something that is silently not CUDA.
"""
import re
import sys

IDENT = r"[A-Za-z_]\w*"


def fail(path, text, pos, msg):
    line = text.count("\n", 0, pos) + 1
    sys.exit(f"{path}:{line}: translate_cu: {msg}")


def split_top(s, sep=","):
    """Split s at separators outside (), [] and {} (not <>: '->' and '>' are operators here)."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def match_paren(text, i):
    """text[i] == '('; index just past its matching ')'."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    return -1


def launch_bounds(path, text):
    """kernel name -> first __launch_bounds__ argument."""
    bounds, code = {}, mask_code(text)
    for m in re.finditer(r"__launch_bounds__\s*\(", code):
        end = match_paren(text, m.end() - 1)
        if end < 0:
            fail(path, text, m.start(), "unbalanced __launch_bounds__")
        args = split_top(text[m.end():end - 1])
        name = re.match(r"\s*(" + IDENT + r")\s*\(", text[end:])
        if not name:
            fail(path, text, m.start(), "__launch_bounds__ not followed by a kernel name")
        bounds[name.group(1)] = " ".join(args[0].split())
    return bounds


LITERALS = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def mask_code(text):
    """text with comments and string/char literals blanked, same length and lines: searched
    instead of text, so that a launch written in a comment or a string is left alone."""
    return LITERALS.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def keep_newlines(s):
    return "\n" * s.count("\n")


def translate_launches(path, text, bounds):
    out, pos, code = [], 0, mask_code(text)
    pat = re.compile(r"(" + IDENT + r")(\s*<[^<>;(){}]*>)?\s*<<<")
    while True:
        m = pat.search(code, pos)
        if not m:
            break
        close = code.find(">>>", m.end())
        if close < 0:
            fail(path, text, m.start(), "<<< without >>>")
        config = text[m.end():close]
        name = m.group(1) + ("".join((m.group(2) or "").split()))
        if not (2 <= len(split_top(config)) <= 4):
            fail(path, text, m.start(), f"launch of {name}: 2 to 4 launch arguments expected")
        bound = bounds.get(m.group(1), "0")
        # The launch configuration keeps its own newlines; the kernel name's are kept after it.
        out.append(text[pos:m.start()])
        out.append(f'::saec_simt::launcher({name}, "{name}", {bound}, __FILE__, __LINE__, '
                   f"{config})" + keep_newlines(m.group(0)))
        pos = close + 3
    out.append(text[pos:])
    return "".join(out)


def translate_shared(path, text):
    out, pos, code = [], 0, mask_code(text)
    pat = re.compile(r"(\bextern\s+)?\b__shared__\b")
    while True:
        m = pat.search(code, pos)
        if not m:
            break
        semi = code.find(";", m.end())
        if semi < 0:
            fail(path, text, m.start(), "__shared__ declaration without ';'")
        decl = text[m.end():semi]
        align = "0"
        am = re.search(r"__align__\s*\(\s*(\d+)\s*\)", decl)
        if am:
            align = am.group(1)
            decl = decl[:am.start()] + " " + decl[am.end():]
        parts = split_top(decl)
        first = re.match(r"\s*(.*?)\s*(" + IDENT + r")\s*((?:\[[^\]]*\]\s*)*)$", parts[0], re.S)
        if not first or not first.group(1).strip():
            fail(path, text, m.start(), "cannot read this __shared__ declaration")
        ctype = " ".join(first.group(1).split())
        decls = [(first.group(2), first.group(3))]
        for p in parts[1:]:
            d = re.match(r"\s*(" + IDENT + r")\s*((?:\[[^\]]*\]\s*)*)$", p)
            if not d:
                fail(path, text, m.start(), "cannot read a declarator of this __shared__ declaration")
            decls.append((d.group(1), d.group(2)))
        stmts = []
        for name, dims in decls:
            dims = "".join(dims.split())
            if m.group(1):
                if dims != "[]" or len(decls) != 1:
                    fail(path, text, m.start(), "extern __shared__ must be one unsized array")
                stmts.append(f"SAEC_SIMT_DYNAMIC_SHARED({ctype}, {name})")
            else:
                if "[]" in dims:
                    fail(path, text, m.start(), f"__shared__ {name}: unsized array without extern")
                stmts.append(f"SAEC_SIMT_SHARED({align}, {ctype}, {name}, {dims})")
        out.append(text[pos:m.start()])
        out.append("; ".join(stmts) + keep_newlines(text[m.start():semi]))
        pos = semi
    out.append(text[pos:])
    return "".join(out)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: translate_cu.py IN.cu OUT.cpp")
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        text = f.read()
    body = translate_shared(src, translate_launches(src, text, launch_bounds(src, text)))
    # What must not survive: an untranslated launch or shared declaration (comments aside).
    code = mask_code(body)
    for token in ("<<<", ">>>", "__shared__"):
        i = code.find(token)
        if i >= 0:
            fail(src, code, i, f"'{token}' left untranslated")
    if body.count("\n") != text.count("\n"):
        sys.exit(f"{src}: translate_cu: line count changed (a bug in the translator)")
    with open(dst, "w", encoding="utf-8") as f:
        f.write(f'#line 1 "{src}"\n{body}')


if __name__ == "__main__":
    main()
