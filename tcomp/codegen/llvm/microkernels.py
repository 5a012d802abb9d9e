"""tcomp's own CPU micro-kernels, generated as LLVM IR into the module that calls them (tensor intrinsics).

- ``tcomp_sgemm_f32_{mr}x{nr}_v{lanes}(a, lda, b, ldb, c, ldc, K, accumulate)``: ``C[mr, nr] (+)= A[mr, K] @ B[K, nr]``
  with ``mr x nr/lanes`` vector accumulators held in registers across the whole ``K`` loop, one broadcast of
  ``A[r, k]`` and ``nr/lanes`` vector loads of ``B[k, :]`` per step, fused multiply-adds throughout. Strides are in
  elements. ``accumulate = 0`` starts from zero (``K = 0`` with ``accumulate = 0`` clears the tile). The
  accumulators start at zero and the C tile is read only after the K loop (``C + A @ B``), its cache lines
  prefetched for writing on entry: the loop never waits for C (measured on 1024^3, 2 cores AVX-512: about 5%
  faster than starting the accumulators from loaded C).
- ``tcomp_sdot_f32_v{lanes}(a, b, n, c, accumulate)``: ``c[0] (+)= sum(a[0:n] * b[0:n])`` with a vector
  accumulator, a scalar tail and a tree reduction at the end.
- ``tcomp_igemm_u8s8_{mr}x{nr}_v{lanes}(a, lda, b, ldb, c, ldc, K4, accumulate)``: the int32 tile
  ``C[mr, nr] (+)= A[mr, 4 K4] @ B[4 K4, nr]`` of uint8 ``A`` (rows of bytes) and int8 ``B`` stored in groups of
  four steps, ``b[k4, j, 0:4] = B[4 k4 : 4 k4 + 4, j]`` (``ldb`` bytes apart): each step broadcasts four bytes of a
  row of A and adds the four products of every column into its int32 lane with ``vpdpbusd`` (AVX512-VNNI, or
  AVX-VNNI for 8 lanes), exactly (no saturation).
- ``tcomp_igemm_i16_{mr}x{nr}_v{lanes}(a, lda, b, ldb, c, ldc, K2, accumulate)``: the same over pairs of int16
  steps, for CPUs without VNNI: each step broadcasts two int16 of a row of A and adds the two products of every
  column into its int32 lane with ``pmaddwd`` (SSE2, AVX2 or AVX512BW for 4, 8 or 16 lanes; a sum of two products
  of 8-bit values cannot overflow it). Strides are in elements.

- ``tcomp_bgemm_{dp|fma}_{mr}x{nr}_v{lanes}(a, lda, b, ldb, c, ldc, K2, accumulate)``: the float32 tile
  ``C[mr, nr] (+)= A[mr, 2 K2] @ B[2 K2, nr]`` of bfloat16 ``A`` (rows of 16-bit patterns) and ``B`` stored in pairs
  of steps, ``b[k2, j, 0:2] = B[2 k2 : 2 k2 + 2, j]``: each step broadcasts two bfloat16 of a row of A and adds the
  two products of every column into its float32 lane. ``dp``: with ``vdpbf16ps`` (AVX512-BF16; 16 lanes, or 8 with
  AVX512VL), which adds the products of the odd steps, then of the even ones, each sum rounded once (the products
  of two bfloat16 are exact in float32), subnormal operands and results taken as zeros. ``fma``: the same sums for
  other CPUs, each bfloat16 widened to float32 (its bits as the upper half) and added by a fused multiply-add in the
  same order, subnormals kept. Strides are in elements.

- ``tcomp_rows_{kernel}(a, lda, b, ldb, c, ldc, K, accumulate, rows)`` for each GEMM kernel above
  (``tcomp_rows_sgemm_f32_8x32_v16``): the same tile for its first ``rows`` rows only (all ``mr`` of them when
  ``rows >= mr``), by the kernel of that many rows: the last tile of a symbolic number of rows computes no padding
  rows.

Pointers are ``i8*`` (tcomp's ``handle``) and are declared ``noalias``: the caller passes disjoint regions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import llvmlite.ir as ir

from tcomp.codegen.llvm import types as T
from tcomp.codegen.llvm.context import CodegenError
from tcomp.codegen.llvm.extern import register_extern

_GEMM_RE = re.compile(r"^tcomp_sgemm_f32_(\d+)x(\d+)_v(\d+)$")
_ROWS_RE = re.compile(r"^tcomp_rows_((?:sgemm_f32|igemm_u8s8|igemm_i16|bgemm_dp|bgemm_fma)_)(\d+)(x\d+_v\d+)$")
_IGEMM_RE = re.compile(r"^tcomp_igemm_(u8s8|i16)_(\d+)x(\d+)_v(\d+)$")
_BGEMM_RE = re.compile(r"^tcomp_bgemm_(dp|fma)_(\d+)x(\d+)_v(\d+)$")
_DOT_RE = re.compile(r"^tcomp_sdot_f32_v(\d+)$")


def gemm_kernel_name(mr: int, nr: int, lanes: int) -> str:
    return f"tcomp_sgemm_f32_{mr}x{nr}_v{lanes}"


def rows_kernel_name(kernel: str) -> str:
    """The kernel computing the first rows of GEMM ``kernel``'s tile (module docstring)."""
    return "tcomp_rows_" + kernel[len("tcomp_"):]


def igemm_kernel_name(mr: int, nr: int, lanes: int, pairs: bool) -> str:
    return f"tcomp_igemm_{'i16' if pairs else 'u8s8'}_{mr}x{nr}_v{lanes}"


def bgemm_kernel_name(mr: int, nr: int, lanes: int, native: bool) -> str:
    """The bfloat16 GEMM tile kernel: ``vdpbf16ps`` where ``native``, else float32 multiply-adds."""
    return f"tcomp_bgemm_{'dp' if native else 'fma'}_{mr}x{nr}_v{lanes}"


def dot_kernel_name(lanes: int) -> str:
    return f"tcomp_sdot_f32_v{lanes}"


@dataclass(frozen=True)
class MicroKernelCall:
    """What one call of a micro-kernel computes, read from its name and arguments (for the tuner's features):
    ``C[mr, nr] (+)= A[mr, depth] @ B[depth, nr]`` (a dot product: ``mr = nr = 1``). ``a``, ``b``, ``c`` are the
    pointer arguments (``address_of`` a buffer element), ``lda``/``ldb``/``ldc`` the row strides in elements (None
    where the kernel reads a contiguous vector), ``depth`` the reduction steps (0: the tile is only cleared)."""

    kind: str  # "sgemm" or "sdot"
    mr: int
    nr: int
    lanes: int
    depth: Any  # Expr
    a: Any
    b: Any
    c: Any
    lda: Any = None
    ldb: Any = None
    ldc: Any = None

    @property
    def element_bytes(self) -> int:
        return 4  # float32 kernels


def describe_call(name: str, args: Sequence[Any]) -> MicroKernelCall | None:
    """The ``MicroKernelCall`` of a call of extern ``name`` with ``args``; None for any other function."""
    match = _GEMM_RE.match(name)
    if match and len(args) == 8:
        mr, nr, lanes = (int(g) for g in match.groups())
        a, lda, b, ldb, c, ldc, depth, _ = args
        return MicroKernelCall("sgemm", mr, nr, lanes, depth, a, b, c, lda, ldb, ldc)
    match = _DOT_RE.match(name)
    if match and len(args) == 5:
        a, b, depth, c, _ = args
        return MicroKernelCall("sdot", 1, 1, int(match.group(1)), depth, a, b, c)
    return None


def _intrinsic(module: ir.Module, name: str, result: ir.Type, args: list[ir.Type]) -> ir.Function:
    """The LLVM intrinsic ``name`` of ``module``, declared on first use."""
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, ir.FunctionType(result, args), name=name)


def _fma(module: ir.Module, ty: ir.Type) -> ir.Function:
    return _intrinsic(module, f"llvm.fma.{T.intrinsic_suffix(ty)}", ty, [ty, ty, ty])


def _splat(builder: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    vec_ty = ir.VectorType(value.type, lanes)
    single = builder.insert_element(ir.Constant(vec_ty, ir.Undefined), value, T.I32(0))
    mask = ir.Constant(ir.VectorType(T.I32, lanes), [0] * lanes)
    return builder.shuffle_vector(single, ir.Constant(vec_ty, ir.Undefined), mask)


def _new_function(module: ir.Module, name: str, args: list[ir.Type]) -> ir.Function:
    function = ir.Function(module, ir.FunctionType(T.VOID, args), name=name)
    function.linkage = "internal"
    function.attributes.add("nounwind")
    for arg in function.args:
        if isinstance(arg.type, ir.PointerType):
            arg.add_attribute("noalias")
    return function


def _prefetch_tile_for_write(
    module: ir.Module, bld: ir.IRBuilder, c: ir.Value, ldc: ir.Value, rows: int, columns: int
) -> None:
    """Prefetch (for writing) every cache line of the ``rows x columns`` tile of 4-byte elements at ``c``, whatever
    its alignment: a line every 16 elements of a row and the row's last element."""
    prefetch = _intrinsic(module, "llvm.prefetch.p0", T.VOID, [T.I8_PTR, T.I32, T.I32, T.I32])
    for r in range(rows):
        row = bld.mul(T.I64(r), ldc)
        for column in [*range(0, columns, 16), columns - 1]:
            address = bld.gep(c, [bld.add(row, T.I64(column))], inbounds=False)
            bld.call(prefetch, [bld.bitcast(address, T.I8_PTR), T.I32(1), T.I32(3), T.I32(1)])


@dataclass(frozen=True)
class _TileArithmetic:
    """What a register-tile kernel (``_define_tile``) computes with: the ``element`` type of A and B, the
    ``c_vector`` type of a vector of C (and of an accumulator), and ``update(bld, acc, a, b)`` for one step, where
    ``b`` is a ``vector`` of B (``vector.count / c_vector.count`` elements per lane) and ``a`` the as many elements of
    a row of A, loaded as one scalar and broadcast to every lane."""

    element: ir.Type
    c_vector: ir.VectorType
    vector: ir.VectorType
    update: Callable[[ir.IRBuilder, ir.Value, ir.Value, ir.Value], ir.Value]


def _define_tile(module: ir.Module, name: str, mr: int, nv: int, arith: _TileArithmetic) -> ir.Function:
    """``name(a, lda, b, ldb, c, ldc, steps, accumulate)``: ``mr x nv`` accumulators held in registers across the
    whole loop of ``steps``, then added to the C tile (or stored, without ``accumulate``). See the module
    docstring for the kernels."""
    lanes = arith.c_vector.count
    a_step = arith.vector.count // lanes  # elements of A per step, loaded as one scalar
    a_scalar = arith.element if a_step == 1 else ir.IntType(arith.element.width * a_step)
    align = 4 if isinstance(arith.element, ir.FloatType) else arith.element.width // 8
    function = _new_function(module, name, [T.I8_PTR, T.I64, T.I8_PTR, T.I64, T.I8_PTR, T.I64, T.I64, T.I32])
    a_raw, lda, b_raw, ldb, c_raw, ldc, k_count, accumulate = function.args
    entry = function.append_basic_block("entry")
    loop = function.append_basic_block("k.loop")
    done = function.append_basic_block("k.done")
    bld = ir.IRBuilder(entry)
    a, b = (bld.bitcast(pointer, arith.element.as_pointer()) for pointer in (a_raw, b_raw))
    c = bld.bitcast(c_raw, arith.c_vector.element.as_pointer())
    keep = bld.icmp_signed("!=", accumulate, T.I32(0))
    zero = ir.Constant(arith.c_vector, [0] * lanes)
    _prefetch_tile_for_write(module, bld, c, ldc, mr, nv * lanes)
    initial = [zero] * (mr * nv)
    bld.cbranch(bld.icmp_signed(">", k_count, T.I64(0)), loop, done)

    bld.position_at_end(loop)
    k = bld.phi(T.I64, "k")
    accs = [bld.phi(arith.c_vector, f"acc.{i}") for i in range(mr * nv)]
    b_row = bld.mul(k, ldb)
    b_vectors = []
    for v in range(nv):
        ptr = bld.gep(b, [bld.add(b_row, T.I64(v * arith.vector.count))], inbounds=True)
        b_vectors.append(bld.load(bld.bitcast(ptr, arith.vector.as_pointer()), align=align))
    a_column = bld.mul(k, T.I64(a_step))
    updated = []
    for r in range(mr):
        ptr = bld.gep(a, [bld.add(bld.mul(T.I64(r), lda), a_column)], inbounds=True)
        scalar = bld.load(bld.bitcast(ptr, a_scalar.as_pointer()), align=align)
        a_splat = _splat(bld, scalar, lanes)
        if a_splat.type != arith.vector:
            a_splat = bld.bitcast(a_splat, arith.vector)
        for v in range(nv):
            updated.append(arith.update(bld, accs[r * nv + v], a_splat, b_vectors[v]))
    k_next = bld.add(k, T.I64(1))
    bld.cbranch(bld.icmp_signed("<", k_next, k_count), loop, done)
    k.add_incoming(T.I64(0), entry)
    k.add_incoming(k_next, loop)
    for acc, start, new in zip(accs, initial, updated):
        acc.add_incoming(start, entry)
        acc.add_incoming(new, loop)

    bld.position_at_end(done)
    finals = []
    for start, new in zip(initial, updated):
        phi = bld.phi(arith.c_vector)
        phi.add_incoming(start, entry)
        phi.add_incoming(new, loop)
        finals.append(phi)
    add = bld.fadd if isinstance(arith.c_vector.element, ir.FloatType) else bld.add
    for r in range(mr):
        for v in range(nv):
            offset = bld.add(bld.mul(T.I64(r), ldc), T.I64(v * lanes))
            ptr = bld.bitcast(bld.gep(c, [offset], inbounds=True), arith.c_vector.as_pointer())
            previous = bld.select(keep, bld.load(ptr, align=4), zero)
            bld.store(add(finals[r * nv + v], previous), ptr, align=4)
    bld.ret_void()
    return function


@register_extern("tcomp_sgemm_f32_")
def define_sgemm(module: ir.Module, name: str) -> ir.Function:
    match = _GEMM_RE.match(name)
    if not match:
        raise CodegenError(f"malformed GEMM micro-kernel name {name!r}")
    mr, nr, lanes = (int(g) for g in match.groups())
    if nr % lanes:
        raise CodegenError(f"{name}: nr={nr} is not a multiple of lanes={lanes}")
    vec = ir.VectorType(T.F32, lanes)
    fma = _fma(module, vec)

    def update(bld: ir.IRBuilder, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        return bld.call(fma, [a, b, acc])

    arith = _TileArithmetic(element=T.F32, c_vector=vec, vector=vec, update=update)
    return _define_tile(module, name, mr, nr // lanes, arith)


@register_extern("tcomp_sdot_f32_")
def define_sdot(module: ir.Module, name: str) -> ir.Function:
    match = _DOT_RE.match(name)
    if not match:
        raise CodegenError(f"malformed dot micro-kernel name {name!r}")
    lanes = int(match.group(1))
    vec = ir.VectorType(T.F32, lanes)
    fptr = T.F32.as_pointer()
    function = _new_function(module, name, [T.I8_PTR, T.I8_PTR, T.I64, T.I8_PTR, T.I32])
    a_raw, b_raw, n, c_raw, accumulate = function.args
    entry = function.append_basic_block("entry")
    vloop = function.append_basic_block("vec.loop")
    vdone = function.append_basic_block("vec.done")
    tloop = function.append_basic_block("tail.loop")
    finish = function.append_basic_block("finish")
    bld = ir.IRBuilder(entry)
    a, b, c = (bld.bitcast(p, fptr) for p in (a_raw, b_raw, c_raw))
    n_vec = bld.mul(bld.sdiv(n, T.I64(lanes)), T.I64(lanes))
    zero = ir.Constant(vec, [0.0] * lanes)
    bld.cbranch(bld.icmp_signed(">", n_vec, T.I64(0)), vloop, vdone)

    bld.position_at_end(vloop)
    i = bld.phi(T.I64, "i")
    acc = bld.phi(vec, "acc")
    av = bld.load(bld.bitcast(bld.gep(a, [i], inbounds=True), vec.as_pointer()), align=4)
    bv = bld.load(bld.bitcast(bld.gep(b, [i], inbounds=True), vec.as_pointer()), align=4)
    acc_next = bld.call(_fma(module, vec), [av, bv, acc])
    i_next = bld.add(i, T.I64(lanes))
    bld.cbranch(bld.icmp_signed("<", i_next, n_vec), vloop, vdone)
    i.add_incoming(T.I64(0), entry)
    i.add_incoming(i_next, vloop)
    acc.add_incoming(zero, entry)
    acc.add_incoming(acc_next, vloop)

    bld.position_at_end(vdone)
    total_vec = bld.phi(vec)
    total_vec.add_incoming(zero, entry)
    total_vec.add_incoming(acc_next, vloop)
    # tree reduction of the vector accumulator
    value = total_vec
    width = lanes
    while width > 1:
        half = width // 2
        low = bld.shuffle_vector(value, value, ir.Constant(ir.VectorType(T.I32, half), list(range(half))))
        high = bld.shuffle_vector(value, value, ir.Constant(ir.VectorType(T.I32, half), list(range(half, width))))
        value = bld.fadd(low, high)
        width = half
    vector_sum = bld.extract_element(value, T.I32(0))
    start = bld.select(bld.icmp_signed("!=", accumulate, T.I32(0)), bld.load(c, align=4), ir.Constant(T.F32, 0.0))
    base = bld.fadd(start, vector_sum)
    bld.cbranch(bld.icmp_signed("<", n_vec, n), tloop, finish)

    bld.position_at_end(tloop)
    j = bld.phi(T.I64, "j")
    partial = bld.phi(T.F32, "partial")
    a_j = bld.load(bld.gep(a, [j], inbounds=True), align=4)
    b_j = bld.load(bld.gep(b, [j], inbounds=True), align=4)
    product = bld.fmul(a_j, b_j)
    partial_next = bld.fadd(partial, product)
    j_next = bld.add(j, T.I64(1))
    bld.cbranch(bld.icmp_signed("<", j_next, n), tloop, finish)
    j.add_incoming(n_vec, vdone)
    j.add_incoming(j_next, tloop)
    partial.add_incoming(base, vdone)
    partial.add_incoming(partial_next, tloop)

    bld.position_at_end(finish)
    result = bld.phi(T.F32)
    result.add_incoming(base, vdone)
    result.add_incoming(partial_next, tloop)
    bld.store(result, c, align=4)
    bld.ret_void()
    return function


def _dot_bytes(module: ir.Module, bld: ir.IRBuilder, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    """``acc`` (int32 lanes) plus, per lane, the four products of the bytes of ``a`` (uint8) and ``b`` (int8) in
    it: ``vpdpbusd``."""
    name = f"llvm.x86.avx512.vpdpbusd.{acc.type.count * 32}"
    return bld.call(_intrinsic(module, name, acc.type, [acc.type, a.type, b.type]), [acc, a, b])


_PAIR_DOTS = {4: "llvm.x86.sse2.pmadd.wd", 8: "llvm.x86.avx2.pmadd.wd", 16: "llvm.x86.avx512.pmaddw.d.512"}


def _dot_pairs(module: ir.Module, bld: ir.IRBuilder, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    """``acc`` (int32 lanes) plus, per lane, the two products of the int16 of ``a`` and ``b`` in it: ``pmaddwd``
    (SSE2, AVX2 or AVX512BW by the width)."""
    function = _intrinsic(module, _PAIR_DOTS[acc.type.count], acc.type, [a.type, b.type])
    return bld.add(acc, bld.call(function, [a, b]))


def _tile_name(pattern: re.Pattern[str], name: str, what: str) -> tuple[str, int, int, int]:
    """``(kind, mr, nr, lanes)`` of a tile kernel's ``name`` of the family ``pattern`` matches."""
    match = pattern.match(name)
    if not match:
        raise CodegenError(f"malformed {what} micro-kernel name {name!r}")
    kind, mr, nr, lanes = match.groups()
    return kind, int(mr), int(nr), int(lanes)


@register_extern("tcomp_igemm_")
def define_igemm(module: ir.Module, name: str) -> ir.Function:
    kind, mr, nr, lanes = _tile_name(_IGEMM_RE, name, "integer GEMM")
    if nr % lanes or lanes not in ((8, 16) if kind == "u8s8" else tuple(_PAIR_DOTS)):
        raise CodegenError(f"{name}: nr={nr} must be a multiple of lanes={lanes} (8 or 16 for u8s8, 4, 8 or 16 for "
                           "i16)")
    vec = ir.VectorType(T.I32, lanes)
    if kind == "u8s8":  # a step: four bytes of a row of A against four of each column

        def update(bld: ir.IRBuilder, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
            return _dot_bytes(module, bld, acc, a, b)

        arith = _TileArithmetic(element=T.I8, c_vector=vec, vector=ir.VectorType(T.I8, 4 * lanes), update=update)
    else:  # a step: two int16 of a row of A against two of each column
        i16 = ir.IntType(16)

        def update(bld: ir.IRBuilder, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
            return _dot_pairs(module, bld, acc, a, b)

        arith = _TileArithmetic(element=i16, c_vector=vec, vector=ir.VectorType(i16, 2 * lanes), update=update)
    return _define_tile(module, name, mr, nr // lanes, arith)


class _BFloat(ir.Type):
    """LLVM's ``bfloat`` (llvmlite has no such type): only the operands of ``vdpbf16ps`` have it."""

    def _to_string(self) -> str:
        return "bfloat"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BFloat)

    def __hash__(self) -> int:
        return hash("bfloat")


def _dot_bfloat16_pairs(module: ir.Module, bld: ir.IRBuilder, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    """``acc`` (float32 lanes) plus, per lane, the two products of the bfloat16 of ``a`` and ``b`` in it:
    ``vdpbf16ps``."""
    pairs = ir.VectorType(_BFloat(), 2 * acc.type.count)
    name = f"llvm.x86.avx512bf16.dpbf16ps.{acc.type.count * 32}"
    function = _intrinsic(module, name, acc.type, [acc.type, pairs, pairs])
    return bld.call(function, [acc, bld.bitcast(a, pairs), bld.bitcast(b, pairs)])


def _fma_bfloat16_pairs(module: ir.Module, bld: ir.IRBuilder, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    """What ``_dot_bfloat16_pairs`` adds, with float32 multiply-adds: each pair (an int32 lane) widened to the
    float32 of its odd step (the upper 16 bits) and of its even step (the lower, shifted up)."""
    lanes = acc.type.count
    words = ir.VectorType(T.I32, lanes)
    upper = ir.Constant(words, [-65536] * lanes)
    shift = ir.Constant(words, [16] * lanes)

    def halves(pairs: ir.Value) -> tuple[ir.Value, ir.Value]:
        word = bld.bitcast(pairs, words)
        return bld.bitcast(bld.and_(word, upper), acc.type), bld.bitcast(bld.shl(word, shift), acc.type)

    (a_odd, a_even), (b_odd, b_even) = halves(a), halves(b)
    fma = _fma(module, acc.type)
    return bld.call(fma, [a_even, b_even, bld.call(fma, [a_odd, b_odd, acc])])


@register_extern("tcomp_bgemm_")
def define_bgemm(module: ir.Module, name: str) -> ir.Function:
    kind, mr, nr, lanes = _tile_name(_BGEMM_RE, name, "bfloat16 GEMM")
    if nr % lanes or (kind == "dp" and lanes not in (8, 16)):
        raise CodegenError(f"{name}: nr={nr} must be a multiple of lanes={lanes} (8 or 16 for dp)")
    dot = _dot_bfloat16_pairs if kind == "dp" else _fma_bfloat16_pairs

    def update(bld: ir.IRBuilder, acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        return dot(module, bld, acc, a, b)

    i16 = ir.IntType(16)
    arith = _TileArithmetic(element=i16, c_vector=ir.VectorType(T.F32, lanes), vector=ir.VectorType(i16, 2 * lanes),
                            update=update)
    return _define_tile(module, name, mr, nr // lanes, arith)


@register_extern("tcomp_rows_")
def define_rows(module: ir.Module, name: str) -> ir.Function:
    """A GEMM tile kernel of ``mr`` rows limited to its first ``rows`` (module docstring): a switch over ``rows``
    to the kernels of 1 to ``mr - 1`` rows, the full kernel otherwise."""
    match = _ROWS_RE.match(name)
    if not match:
        raise CodegenError(f"malformed micro-kernel name {name!r}")
    kind, mr, rest = match.group(1), int(match.group(2)), match.group(3)
    define = define_sgemm if kind.startswith("sgemm") else define_bgemm if kind.startswith("bgemm") else define_igemm
    kernels = {}
    for rows in range(1, mr + 1):
        kernel_name = f"tcomp_{kind}{rows}{rest}"
        existing = module.globals.get(kernel_name)
        kernels[rows] = existing if isinstance(existing, ir.Function) else define(module, kernel_name)
    function = _new_function(module, name, [T.I8_PTR, T.I64, T.I8_PTR, T.I64, T.I8_PTR, T.I64, T.I64, T.I32, T.I64])
    *args, rows_arg = function.args
    bld = ir.IRBuilder(function.append_basic_block("entry"))
    blocks = {rows: function.append_basic_block(f"rows.{rows}") for rows in range(1, mr + 1)}
    switch = bld.switch(rows_arg, blocks[mr])
    for rows in range(1, mr):
        switch.add_case(T.I64(rows), blocks[rows])
    for rows, block in blocks.items():
        bld.position_at_end(block)
        bld.call(kernels[rows], list(args))
        bld.ret_void()
    return function
