#!/usr/bin/env python3
"""Where the fused CPU scan's hot loops spill registers.

Disassembles the scan kernels of a build (the AVX2 and AVX-512 copies of
selective_scan_kernels.cpp) with objdump and, for the N = 16 instantiation
of the forward (forward_run), the backward (backward_lanes) and the
reverse's state groups (reverse_states), lists each innermost loop of 30
or more instructions: its instructions, its vector multiplies and FMAs,
and its vector stores to the stack and reads of it. A stack slot stored
and read back in the same loop is a spill: a value the
register allocator could not keep (see the comments at state_group() and
reverse_group() in the kernel file for which spills are chosen and why).

Usage: tools/check-scan-spills.py [BUILD_DIR]   (default: build, as the Makefile)
Needs objdump (binutils) and Python 3; nothing of the build depends on it.
"""
import os
import re
import shutil
import subprocess
import sys

OBJ = "libmamba/CMakeFiles/mambakit_scan_{isa}.dir/src/kernels/cpu/selective_scan_kernels.cpp.o"
VEC = {"avx2": ("F8", "ymm"), "avx512": ("F16", "zmm")}
FUNCS = ("forward_run", "backward_lanes", "reverse_states")
INSN = re.compile(r"^\s+([0-9a-f]+):\s+(.*)$")
STACK = re.compile(r"-?0x[0-9a-f]+\(%r[sb]p\)|\(%r[sb]p\)")


def functions(obj):
    """(demangled name, [(address, instruction text)]) per function."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", obj],
                         capture_output=True, text=True, check=True).stdout
    for block in re.split(r"\n(?=[0-9a-f]+ <)", out):
        head, _, body = block.partition("\n")
        m = re.match(r"[0-9a-f]+ <(.*)>:$", head)
        if not m:
            continue
        insns = [(int(a, 16), t) for a, t in (INSN.match(l).groups()
                                                for l in body.split("\n") if INSN.match(l))]
        yield m.group(1), insns


def innermost_loops(insns):
    """Index ranges [j, i] of backward jumps that contain no other loop."""
    index = {a: k for k, (a, _) in enumerate(insns)}
    loops = []
    for i, (addr, text) in enumerate(insns):
        m = re.search(r"\bj\w+\s+([0-9a-f]+) <", text)
        if m and int(m.group(1), 16) < addr and int(m.group(1), 16) in index:
            loops.append((index[int(m.group(1), 16)], i))
    return [(j, i) for (j, i) in loops
            if not any(j <= j2 and i2 <= i and (j2, i2) != (j, i) for (j2, i2) in loops)]


def describe(insns, j, i, reg):
    body = [t for _, t in insns[j:i + 1]]
    fma = sum(1 for t in body if re.match(r"v(fn?m(add|sub)\w*|mulps)\b", t))
    # AT&T order: a vector store names the stack slot last; any other vector
    # instruction naming one reads it (a load, or an operand of the FMA).
    stack = [t for t in body if t.startswith("v") and STACK.search(t)]
    stores = [t for t in stack if re.match(r"vmov\w+\s+%" + reg + r"\d+,", t) and STACK.search(t.split(",")[-1])]
    reads = [t for t in stack if t not in stores]
    spilled = {STACK.search(t).group(0) for t in stores} & {STACK.search(t).group(0) for t in reads}
    return len(body), fma, len(stores), len(reads), len(spilled)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    if shutil.which("objdump") is None:
        print("check-scan-spills: objdump not found (Debian: binutils); nothing checked")
        return
    for isa, (vec, reg) in VEC.items():
        obj = os.path.join(build, OBJ.format(isa=isa))
        if not os.path.exists(obj):
            print(f"{isa}: {obj} not found (build the project first)")
            continue
        print(f"{isa} ({obj})")
        for name, insns in functions(obj):
            func = next((f for f in FUNCS if f"::{f}<" in name), None)
            if not func or f"::{vec}, " not in name or (func != "reverse_states" and ", 16, true" not in name):
                continue
            shown = name[name.index(func):]
            shown = re.sub(r"mk::ops::scan_\w+::\(anonymous namespace\)::", "", shown)
            rows = [(j, describe(insns, j, i, reg)) for j, i in innermost_loops(insns)]
            rows = [(j, d) for j, d in rows if d[0] >= 30]
            if rows:
                print("  " + shown.split("(")[0])
            for j, (n, fma, st, ld, sp) in rows:
                print(f"    loop at {insns[j][0]:x}: {n} instructions, {fma} vector mul/FMA, "
                      f"{st} vector stores to the stack, {ld} reads of it, {sp} slots spilled")


if __name__ == "__main__":
    main()
