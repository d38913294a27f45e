#!/usr/bin/env bash
# Regenerates training/data/ort-1.31.1-cuda-kernels.tsv: every kernel the CUDA execution
# provider of ONNX Runtime 1.31.1 registers, read out of the provider library shipped in the
# PyPI wheel onnxruntime-gpu==1.31.1.
#
#   scripts/cuda-kernel-table.sh      # downloads the wheel once into .cache/wheels (~255 MB)
#
# Needs Python 3 with pip (PyPI only) and binutils' objdump.
#
# How: the library is stripped, so the kernel class names
# (kCudaExecutionProvider_<Op>_kOnnxDomain_ver<A>_<B>) are gone. What remains is the code of
# each kernel registration, which builds a KernelDef through the provider bridge's
# ProviderHost vtable: SetName(op), SetDomain(domain), SinceVersion(since[, until]),
# Provider("CUDAExecutionProvider"). The script disassembles the library, follows those
# virtual calls (string arguments are rip-relative `lea`s into .rodata, versions are
# immediates) and keeps every registration whose provider string is CUDAExecutionProvider.
# The vtable slots are not assumed: they are found from the calls whose argument is the
# provider string and the op name "BatchNormalization", then checked on every row.
set -euo pipefail

VERSION=1.31.1
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/training/data/ort-$VERSION-cuda-kernels.tsv
cache=$root/.cache/wheels
python=${PYTHON:-python3}
command -v objdump >/dev/null || { echo "cuda-kernel-table: needs objdump (apt-get install binutils)" >&2; exit 1; }

mkdir -p "$cache"
wheel=$(ls "$cache"/onnxruntime_gpu-$VERSION-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "cuda-kernel-table: fetching onnxruntime-gpu==$VERSION from PyPI (~255 MB, once)"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
    "onnxruntime-gpu==$VERSION" -d "$cache"
  wheel=$(ls "$cache"/onnxruntime_gpu-$VERSION-*.whl | head -n1)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lib=$tmp/libonnxruntime_providers_cuda.so
"$python" - "$wheel" "$lib" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith("capi/libonnxruntime_providers_cuda.so"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY

objdump -d --no-show-raw-insn -M intel "$lib" > "$tmp/disassembly"

"$python" - "$lib" "$tmp/disassembly" "$out.partial" "$VERSION" "$(sha256sum "$wheel" | cut -d' ' -f1)" <<'PY'
import collections, re, struct, sys

lib_path, dis_path, out_path, version, wheel_sha = sys.argv[1:]
lib = open(lib_path, "rb").read()

# Map virtual addresses to file offsets through the ELF64 program headers (PT_LOAD).
e_phoff, = struct.unpack_from("<Q", lib, 0x20)
e_phentsize, e_phnum = struct.unpack_from("<HH", lib, 0x36)
loads = []
for i in range(e_phnum):
    p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", lib, e_phoff + i * e_phentsize)
    if p_type == 1:
        loads.append((p_vaddr, p_offset, p_filesz))

def c_string(vaddr):
    for base, offset, size in loads:
        if base <= vaddr < base + size:
            start = vaddr - base + offset
            end = lib.find(b"\0", start, start + 256)
            if end < 0:
                return None
            try:
                return lib[start:end].decode("ascii")
            except UnicodeDecodeError:
                return None
    return None

# Virtual calls `call QWORD PTR [rax+slot]` with the argument registers set since the last call.
call_re = re.compile(r"call\s+QWORD PTR \[rax\+(0x[0-9a-f]+)\]")
lea_re = re.compile(r"lea\s+(rdx|rcx),\[rip\+0x[0-9a-f]+\]\s+# ([0-9a-f]+)")
imm_re = re.compile(r"mov\s+(edx|ecx),(0x[0-9a-f]+)\s*$")
calls, regs = [], {}
with open(dis_path) as dis:
    for line in dis:
        if "call" in line:
            m = call_re.search(line)
            if m:
                calls.append((int(m.group(1), 16), regs))
            regs = {}
            continue
        m = lea_re.search(line)
        if m:
            regs[m.group(1)] = ("str", int(m.group(2), 16))
            continue
        m = imm_re.search(line)
        if m:
            regs[m.group(1)] = ("imm", int(m.group(2), 16))
            continue
        if "endbr64" in line:
            regs = {}

def string_arg(regs, reg="rdx"):
    kind, value = regs.get(reg, (None, None))
    return c_string(value) if kind == "str" else None

def imm_arg(regs, reg):
    kind, value = regs.get(reg, (None, None))
    return value if kind == "imm" else None

def slot_of(text):
    slots = collections.Counter(slot for slot, regs in calls if string_arg(regs) == text)
    if not slots:
        sys.exit(f"cuda-kernel-table: no call takes the string {text!r}; the library layout changed")
    return slots.most_common(1)[0][0]

PROVIDER = "CUDAExecutionProvider"
provider_slot = slot_of(PROVIDER)
name_slot = slot_of("BatchNormalization")
# KernelDefBuilder's bridge methods sit next to each other in the vtable:
# SetName, SetDomain, SinceVersion(v), SinceVersion(v, w), Provider.
domain_slot, since_slot, range_slot = name_slot + 8, name_slot + 16, name_slot + 24
if provider_slot != name_slot + 32:
    sys.exit(f"cuda-kernel-table: unexpected vtable layout (name slot {name_slot:#x}, provider slot {provider_slot:#x})")

rows, problems, current = set(), [], None
for slot, regs in calls:
    if slot == name_slot:
        current = {"op": string_arg(regs)}
    elif current is None:
        continue
    elif slot == domain_slot:
        current["domain"] = string_arg(regs)
    elif slot == since_slot:
        current["since"], current["until"] = imm_arg(regs, "edx"), ""
    elif slot == range_slot:
        current["since"], current["until"] = imm_arg(regs, "edx"), imm_arg(regs, "ecx")
    elif slot == provider_slot:
        if string_arg(regs) == PROVIDER:
            if None in (current.get("op"), current.get("domain"), current.get("since"), current.get("until")):
                problems.append(current)
            else:
                rows.add((current["op"], current["domain"] or "ai.onnx", current["since"], current["until"]))
        current = None

if problems:
    sys.exit(f"cuda-kernel-table: {len(problems)} registrations could not be read, e.g. {problems[:3]}")
if len(rows) < 300:
    sys.exit(f"cuda-kernel-table: only {len(rows)} registrations found; the library layout changed")

with open(out_path, "w") as out:
    out.write(f"# CUDA execution provider kernels of ONNX Runtime {version}: one row per registered\n")
    out.write(f"# (op, domain, since, until) version range; `until` empty = open-ended. Element types are not listed.\n")
    out.write(f"# Source: libonnxruntime_providers_cuda.so in the PyPI wheel onnxruntime-gpu=={version}\n")
    out.write(f"# (wheel sha256 {wheel_sha}), read from its kernel-registration code by\n")
    out.write(f"# scripts/cuda-kernel-table.sh. Do not edit by hand.\n")
    out.write("op\tdomain\tsince\tuntil\n")
    for op, domain, since, until in sorted(rows, key=lambda r: (r[1] != "ai.onnx", r[1], r[0], r[2])):
        out.write(f"{op}\t{domain}\t{since}\t{until}\n")
print(f"cuda-kernel-table: {len(rows)} kernel registrations")
PY
mv "$out.partial" "$out"
echo "cuda-kernel-table: written to $out"
