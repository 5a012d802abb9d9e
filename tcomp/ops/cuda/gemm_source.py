"""CUDA C of a block-level GEMM tile (``gemm_tile``): a device function that every thread of a block calls once.

    void NAME(const TA* A, const TB* B, float* C, int m_lim, int y_lim, int x_lim, float* smem, int tid)

``A``, ``B``, ``C`` point at the tile's first element (``A(0, 0)``, ``B(0, 0)``, ``C(0, 0)``); the limits say how
many rows, pixel rows and pixel columns of the tile are inside the problem; ``smem`` is the block's shared memory
(``shared_bytes``), ``tid`` the thread's index in the block. The body:

1. **Pipeline**: ``stages - 1`` tiles of ``A`` and ``B`` are requested up front (``cp.async``, zero-filled outside
   the problem), then for each ``block_k`` slice: wait for its copies (``cp.async.wait_group stages - 2``), a
   barrier, request the slice ``stages - 1`` ahead into the buffer the previous step computed on, compute. One
   stage is the plain form: copy, wait, barrier, compute, barrier.
2. **Copies**: each thread copies ``vector``-element pieces along the contiguous dimension (16 bytes where
   alignment allows), consecutive threads consecutive pieces, into ``A``'s tile stored ``[m][k]`` (or ``[k][m]``
   when ``A`` is ``m``-contiguous) and ``B``'s stored ``[k][p]`` (or ``[p][k]`` for a transposed operand);
   convolution pixels are gathered element by element unless a 1 x 1 window makes them contiguous.
3. **Shared-memory layout**: ``PAD`` puts rows ``cols + pad`` elements apart. For float32 tensor-core reads the pad
   makes a warp's 32 fragment reads hit 32 banks: reads at ``row * L + q`` (``q < 4``, 8 rows) need ``L = 4
   (mod 8)``, reads at ``q * L + g`` (``g < 8``) need ``L = 8 (mod 16)``; pairs read as ``float2`` need ``L = 8
   (mod 16)``. 16-bit tiles read by ``ldmatrix`` (8 rows of 16 bytes) need rows an odd number of 16-byte chunks
   apart: a pad of 8 halves. ``SWIZZLE`` stores the 16-byte chunk ``q`` of the tile (row-major) at
   ``q ^ ((q >> s) & 7)`` with ``s = max(3, log2(chunks per row))``: 8 consecutive rows read at one logical
   column land on 8 different bank groups, without padding.
4. **Compute**: tensor cores: per 16 (TF32: 8) deep step, each warp loads its ``A`` fragments (``ldmatrix.x4``,
   ``.trans`` for ``[k][m]`` tiles) and ``B`` fragments (``ldmatrix.x4/.x2.trans`` for ``[k][p]``), or reads
   float32 tiles word by word and rounds them (``cvt``), then issues ``(warp_m / 16) x (warp_n / 8)``
   ``mma.sync``. Float32: per step of 4, each lane reads its rows as ``float4`` (4 steps at once from ``[m][k]``
   tiles) and its columns likewise, then multiply-adds its register tile.
5. **Epilogue**: accumulators go straight to ``C`` (``float4``/``float2`` stores where ``C`` is contiguous and the
   vector wholly inside), rows and pixels outside the limits skipped.
"""

from __future__ import annotations

from collections.abc import Callable

from tcomp.codegen.cuda.device_functions import DeviceFunction, function_name, register_device_function
from tcomp.codegen.cuda.doc import Doc
from tcomp.codegen.cuda.warp_intrinsics import TENSOR_CORE_HELPER
from tcomp.ops.cuda.gemm_tile import (
    GemmProblem,
    GemmTile,
    OperandTile,
    SmemLayout,
    check_tile,
    copy_vector,
    estimated_registers,
    mma_k,
    operand_tiles,
    smem_k_contiguous,
)
from tcomp.target import Precision, Target

C_TYPE = {"float32": "float", "float16": "unsigned short"}
MMA_SUFFIX = {Precision.TF32: "tf32", Precision.FP16: "f16", Precision.BF16: "bf16"}
NAME = "@NAME@"


def _log2(value: int) -> int:
    return value.bit_length() - 1


def _index_function(doc: Doc, name: str, tile: OperandTile) -> None:
    """``name(r, c)``: the element offset of row ``r``, column ``c`` within one stage of ``tile``."""
    with doc.block(f"auto {name} = [&](int r, int c) -> int", "};"):
        if tile.layout is SmemLayout.PAD:
            doc.line(f"return r * {tile.row_stride} + c;")
            return
        per_chunk = 16 // tile.element
        chunks = tile.cols // per_chunk
        shift = max(3, _log2(chunks))
        doc.line(f"int q = r * {chunks} + c / {per_chunk};")
        doc.line(f"q ^= (q >> {shift}) & 7;")
        doc.line(f"return q * {per_chunk} + c % {per_chunk};")


class GemmSource:
    """Generates the device function for one ``(tile, problem)`` (see the module docstring)."""

    def __init__(self, tile: GemmTile, problem: GemmProblem) -> None:
        self.tile = tile
        self.problem = problem
        self.a_tile, self.b_tile = operand_tiles(tile, problem)
        self.doc = Doc()
        p = problem
        ea, eb = p.element_bytes
        self.a_kc, self.b_kc = smem_k_contiguous(tile, problem)
        # pieces of several elements only where shared memory keeps the global layout's contiguous dimension
        if p.a_k_contiguous:
            self.a_vec = copy_vector(tile, tile.block_k, ea, (p.a_sm,), p.K) if self.a_kc else 1
        else:
            self.a_vec = copy_vector(tile, tile.block_m, ea, (p.a_sk,), p.m_extent)
        if p.b_k_contiguous:
            self.b_vec = copy_vector(tile, tile.block_k, eb, (p.b_sx,), p.K) if self.b_kc else 1
        elif p.is_conv:
            contiguous = p.stride[1] == 1 and p.b_sx == 1 and (p.window[1] == 1 or p.dilation[1] % 4 == 0)
            strides = (p.b_sy, p.b_sc, p.dilation[1] if p.window[1] > 1 else 0)
            self.b_vec = copy_vector(tile, self.tile_x, eb, strides, p.x_extent) if contiguous else 1
        else:
            self.b_vec = copy_vector(tile, tile.block_n, eb, (p.b_sc,), p.x_extent) if p.b_sx == 1 else 1

    @property
    def tile_x(self) -> int:
        return self.problem.tile_x or self.tile.block_n

    # -- the function ------------------------------------------------------------------------------------------------
    def source(self) -> str:
        t, p, doc = self.tile, self.problem, self.doc
        ta, tb = C_TYPE[p.a_dtype], C_TYPE[p.b_dtype]
        head = (f"static __device__ __forceinline__ void {NAME}(const {ta}* __restrict__ A, const {tb}* __restrict__ "
                f"B, float* __restrict__ C, int m_lim, int y_lim, int x_lim, float* __restrict__ smem, int tid)")
        doc.line(f"// {t.describe()}, {t.min_blocks} block(s) per multiprocessor; {p.precision} arithmetic, K = {p.K}")
        with doc.block(head):
            doc.line(f"constexpr int KT = {-(-p.K // t.block_k)};")
            doc.line(f"{ta}* const a_smem = ({ta}*)smem;")
            doc.line(f"{tb}* const b_smem = ({tb}*)((char*)smem + {t.stages * self.a_tile.bytes});")
            _index_function(doc, "a_at", self.a_tile)
            _index_function(doc, "b_at", self.b_tile)
            self.loader()
            self.accumulators()
            self.compute()
            self.pipeline()
            self.epilogue()
        return doc.text()

    def loader(self) -> None:
        doc = self.doc
        with doc.block("auto load_stage = [&](int kt, int stage)", "};"):
            doc.line(f"const int k0 = kt * {self.tile.block_k};")
            self.copy_a()
            self.copy_b()

    def _copy_loop(self, name: str, tile: OperandTile, vec: int, outer: tuple[str, int], inner: tuple[str, int],
                   body: list[str], ok: str, src: str, smem_index: str) -> None:
        """Copy one stage of operand ``name`` (``a`` or ``b``). Pieces of ``vec`` elements are numbered in the
        global layout's order, ``inner`` (the contiguous index, its tile extent) fastest, so consecutive threads
        read consecutive addresses; ``body`` derives the indices that ``ok``, ``src`` and ``smem_index`` use."""
        doc, threads = self.doc, self.tile.threads
        (outer_name, outer_extent), (inner_name, inner_extent) = outer, inner
        per_row = inner_extent // vec
        pieces = outer_extent * per_row
        doc.line("#pragma unroll")
        with doc.block(f"for (int it = 0; it < {-(-pieces // threads)}; ++it)"):
            doc.line(f"const int j = tid + it * {threads};")
            if pieces % threads:
                doc.line(f"if (j >= {pieces}) break;")
            doc.line(f"const int {outer_name} = j / {per_row}, {inner_name} = j % {per_row} * {vec};")
            for line in body:
                doc.line(line)
            doc.line(f"const bool ok = {ok};")
            doc.line(f"tc_async_copy<{vec * tile.element}>({name}_smem + stage * {tile.elements} + {smem_index}, "
                     f"ok ? {src} : {name.upper()}, ok);")

    def copy_a(self) -> None:
        p, t = self.problem, self.tile
        order = (("m", t.block_m), ("kc", t.block_k)) if p.a_k_contiguous else (("kc", t.block_k), ("m", t.block_m))
        index = "a_at(m, kc)" if self.a_kc else "a_at(kc, m)"
        self._copy_loop("a", self.a_tile, self.a_vec, *order, ["const int k = k0 + kc;"],
                        f"m < m_lim && k < {p.K}", f"A + m * {p.a_sm} + k * {p.a_sk}", index)

    def copy_b(self) -> None:
        p, t = self.problem, self.tile
        index = "b_at(px, kc)" if self.b_kc else "b_at(kc, px)"
        if p.b_k_contiguous:
            self._copy_loop("b", self.b_tile, self.b_vec, ("px", t.block_n), ("kc", t.block_k),
                            ["const int k = k0 + kc;"], f"px < x_lim && k < {p.K}",
                            f"B + k * {p.b_sc} + px * {p.b_sx}", index)
        elif not p.is_conv:
            self._copy_loop("b", self.b_tile, self.b_vec, ("kc", t.block_k), ("px", t.block_n),
                            ["const int k = k0 + kc;"], f"px < x_lim && k < {p.K}",
                            f"B + k * {p.b_sc} + px * {p.b_sx}", index)
        else:
            (kh, kw), (sy, sx), (dy, dx) = p.window, p.stride, p.dilation
            body = [f"const int k = k0 + kc, py = pp / {self.tile_x}, px = pp % {self.tile_x};",
                    f"const int kz = k / {kh * kw}, ky = k / {kw} % {kh}, kx = k % {kw};"]
            src = f"B + kz * {p.b_sc} + (py * {sy} + ky * {dy}) * {p.b_sy} + (px * {sx} + kx * {dx}) * {p.b_sx}"
            self._copy_loop("b", self.b_tile, self.b_vec, ("kc", t.block_k), ("pp", t.block_n), body,
                            f"k < {p.K} && py < y_lim && px < x_lim", src, "b_at(kc, pp)")

    # -- compute -------------------------------------------------------------------------------------------------------
    def accumulators(self) -> None:
        t, doc = self.tile, self.doc
        warp_m, warp_n = t.warp_tile
        doc.line("const int warp = tid / 32, lane = tid % 32;")
        doc.line(f"const int wm = warp / {t.warps_n} * {warp_m}, wn = warp % {t.warps_n} * {warp_n};")
        if self.problem.precision.uses_tensor_cores:
            doc.line("const int g = lane / 4, q = lane % 4, lr = lane % 8, lj = lane / 8;")
            doc.line(f"float acc[{warp_m // 16}][{warp_n // 8}][4];")
        else:
            thread_m, thread_n = t.thread_tile
            lanes_n = 32 // t.lanes_m
            doc.line(f"const int lm = lane / {lanes_n}, ln = lane % {lanes_n};")
            doc.line(f"float acc[{thread_m}][{thread_n}];")
        doc.line("#pragma unroll")
        with doc.block("for (int i = 0; i < (int)(sizeof(acc) / sizeof(float)); ++i)"):
            doc.line("((float*)acc)[i] = 0.0f;")

    def compute(self) -> None:
        with self.doc.block("auto compute = [&](int stage)", "};"):
            self.doc.line(f"const {C_TYPE[self.problem.a_dtype]}* const as = a_smem + stage * {self.a_tile.elements};")
            self.doc.line(f"const {C_TYPE[self.problem.b_dtype]}* const bs = b_smem + stage * {self.b_tile.elements};")
            if self.problem.precision.uses_tensor_cores:
                self.compute_mma()
            else:
                self.compute_simt()

    def _a(self, m: str, k: str) -> str:
        """Shared-memory element ``A(m, k)`` of the current stage."""
        return f"as[a_at({m}, {k})]" if self.a_kc else f"as[a_at({k}, {m})]"

    def _b(self, k: str, n: str) -> str:
        return f"bs[b_at({n}, {k})]" if self.b_kc else f"bs[b_at({k}, {n})]"

    def compute_simt(self) -> None:
        t, doc = self.tile, self.doc
        thread_m, thread_n = t.thread_tile
        lanes_n = 32 // t.lanes_m
        rv, cv = min(4, thread_m), min(4, thread_n)
        rows = f"wm + i / {rv} * {t.lanes_m * rv} + lm * {rv} + i % {rv}"
        cols = f"wn + j / {cv} * {lanes_n * cv} + ln * {cv} + j % {cv}"
        doc.line("#pragma unroll")
        with doc.block(f"for (int k4 = 0; k4 < {t.block_k}; k4 += 4)"):
            # operands stored k-contiguous are read 4 steps at a time (one float4 per row); the others per step
            doc.line(f"float a4[{thread_m}][4], b4[{thread_n}][4];")
            if self.a_kc:
                self.simt_rows("a4", "i", thread_m, lambda k: self._a(rows, k))
            if self.b_kc:
                self.simt_rows("b4", "j", thread_n, lambda k: self._b(k, cols))
            doc.line("#pragma unroll")
            with doc.block("for (int kk = 0; kk < 4; ++kk)"):
                doc.line(f"float a[{thread_m}], b[{thread_n}];")
                for name, var, count, vec, k_contiguous, at in (
                        ("a", "i", thread_m, rv, self.a_kc, lambda k: self._a(rows, k)),
                        ("b", "j", thread_n, cv, self.b_kc, lambda k: self._b(k, cols))):
                    self.simt_step(name, var, count, vec, k_contiguous, at)
                doc.line("#pragma unroll")
                with doc.block(f"for (int i = 0; i < {thread_m}; ++i)"):
                    doc.line("#pragma unroll")
                    with doc.block(f"for (int j = 0; j < {thread_n}; ++j)"):
                        doc.line("acc[i][j] += a[i] * b[j];")

    def simt_rows(self, name: str, var: str, count: int, at: Callable[[str], str]) -> None:
        """One float4 along ``k`` per row (column) of a k-contiguous tile: 4 steps of ``count`` values."""
        doc = self.doc
        doc.line("#pragma unroll")
        with doc.block(f"for (int {var} = 0; {var} < {count}; ++{var})"):
            doc.line(f"const float4 v = *(const float4*)&{at('k4')};")
            doc.line(f"{name}[{var}][0] = v.x; {name}[{var}][1] = v.y; {name}[{var}][2] = v.z; {name}[{var}][3] = v.w;")

    def simt_step(self, name: str, var: str, count: int, vec: int, k_contiguous: bool,
                  at: Callable[[str], str]) -> None:
        """A lane's ``count`` rows (columns) of one step: from the 4-step registers, or vectors of ``vec``."""
        doc = self.doc
        doc.line("#pragma unroll")
        if k_contiguous:
            with doc.block(f"for (int {var} = 0; {var} < {count}; ++{var})"):
                doc.line(f"{name}[{var}] = {name}4[{var}][kk];")
            return
        vtype = {1: "float", 2: "float2", 4: "float4"}[vec]
        with doc.block(f"for (int {var} = 0; {var} < {count}; {var} += {vec})"):
            doc.line(f"const {vtype} v = *(const {vtype}*)&{at('k4 + kk')};")
            if vec == 1:
                doc.line(f"{name}[{var}] = v;")
            else:
                doc.line(" ".join(f"{name}[{var} + {e}] = v.{'xyzw'[e]};" for e in range(vec)))

    def compute_mma(self) -> None:
        t, p, doc = self.tile, self.problem, self.doc
        warp_m, warp_n = t.warp_tile
        mi_count, ni_count = warp_m // 16, warp_n // 8
        step = mma_k(p.precision)
        doc.line("#pragma unroll")
        with doc.block(f"for (int ks = 0; ks < {t.block_k}; ks += {step})"):
            doc.line(f"unsigned af[{mi_count}][4], bf[{ni_count}][2];")
            if p.a_dtype == "float16":
                self.fragments_ldmatrix(mi_count, ni_count)
            else:
                self.fragments_words(mi_count, ni_count)
            doc.line("#pragma unroll")
            with doc.block(f"for (int mi = 0; mi < {mi_count}; ++mi)"):
                doc.line("#pragma unroll")
                with doc.block(f"for (int ni = 0; ni < {ni_count}; ++ni)"):
                    doc.line(f"tc_mma_{MMA_SUFFIX[p.precision]}(acc[mi][ni], af[mi], bf[ni]);")

    def fragments_ldmatrix(self, mi_count: int, ni_count: int) -> None:
        doc = self.doc
        doc.line("#pragma unroll")
        with doc.block(f"for (int mi = 0; mi < {mi_count}; ++mi)"):
            doc.line("const int m0 = wm + mi * 16;")
            if self.a_kc:  # [m][k]: matrix lj covers rows m0 + (lj % 2) * 8, columns ks + (lj / 2) * 8
                doc.line("tc_ldmatrix<4, false>(af[mi], &as[a_at(m0 + lj % 2 * 8 + lr, ks + lj / 2 * 8)]);")
            else:  # [k][m], transposed
                doc.line("tc_ldmatrix<4, true>(af[mi], &as[a_at(ks + lj / 2 * 8 + lr, m0 + lj % 2 * 8)]);")
        doc.line("#pragma unroll")
        with doc.block(f"for (int ni = 0; ni < {ni_count}; ni += {2 if ni_count % 2 == 0 else 1})"):
            doc.line("const int n0 = wn + ni * 8;")
            if ni_count % 2 == 0:
                doc.line("unsigned r[4];")
                if self.b_kc:  # [n][k]: matrices (n0, ks), (n0, ks + 8), (n0 + 8, ks), (n0 + 8, ks + 8)
                    doc.line("tc_ldmatrix<4, false>(r, &bs[b_at(n0 + lj / 2 * 8 + lr, ks + lj % 2 * 8)]);")
                else:  # [k][n], transposed
                    doc.line("tc_ldmatrix<4, true>(r, &bs[b_at(ks + lj % 2 * 8 + lr, n0 + lj / 2 * 8)]);")
                doc.line("bf[ni][0] = r[0]; bf[ni][1] = r[1]; bf[ni + 1][0] = r[2]; bf[ni + 1][1] = r[3];")
            elif self.b_kc:
                doc.line("tc_ldmatrix<2, false>(bf[ni], &bs[b_at(n0 + lr, ks + lj % 2 * 8)]);")
            else:
                doc.line("tc_ldmatrix<2, true>(bf[ni], &bs[b_at(ks + lj % 2 * 8 + lr, n0)]);")

    def fragments_words(self, mi_count: int, ni_count: int) -> None:
        p, doc = self.problem, self.doc
        a, b = self._a, self._b
        doc.line("#pragma unroll")
        with doc.block(f"for (int mi = 0; mi < {mi_count}; ++mi)"):
            doc.line("const int m0 = wm + mi * 16 + g;")
            if p.precision is Precision.TF32:
                for r, (dm, dk) in enumerate(((0, 0), (8, 0), (0, 4), (8, 4))):
                    doc.line(f"af[mi][{r}] = tc_tf32({a(f'm0 + {dm}', f'ks + q + {dk}')});")
            else:
                for r, (dm, dk) in enumerate(((0, 0), (8, 0), (0, 8), (8, 8))):
                    first, second = (a(f"m0 + {dm}", f"ks + 2 * q + {dk + e}") for e in (0, 1))
                    doc.line(self._packed(f"af[mi][{r}]", first, second, self.a_kc))
        doc.line("#pragma unroll")
        with doc.block(f"for (int ni = 0; ni < {ni_count}; ++ni)"):
            doc.line("const int n0 = wn + ni * 8 + g;")
            if p.precision is Precision.TF32:
                for r, dk in enumerate((0, 4)):
                    doc.line(f"bf[ni][{r}] = tc_tf32({b(f'ks + q + {dk}', 'n0')});")
            else:
                for r, dk in enumerate((0, 8)):
                    first, second = (b(f"ks + 2 * q + {dk + e}", "n0") for e in (0, 1))
                    doc.line(self._packed(f"bf[ni][{r}]", first, second, self.b_kc))

    def _packed(self, dest: str, first: str, second: str, adjacent: bool) -> str:
        """C that rounds two float32 operands into the 16-bit halves of ``dest`` (``first`` the low one): one
        ``float2`` read where they are adjacent in shared memory."""
        pack = "tc_pack_f16" if self.problem.precision is Precision.FP16 else "tc_pack_bf16"
        if adjacent:
            return f"{{ const float2 v = *(const float2*)&{first}; {dest} = {pack}(v.x, v.y); }}"
        return f"{dest} = {pack}({first}, {second});"

    # -- pipeline and epilogue -----------------------------------------------------------------------------------------
    def pipeline(self) -> None:
        doc, stages = self.doc, self.tile.stages
        if stages == 1:
            with doc.block("for (int kt = 0; kt < KT; ++kt)"):
                for line in ("load_stage(kt, 0);", "tc_async_commit();", "tc_async_wait<0>();", "__syncthreads();",
                             "compute(0);", "__syncthreads();"):
                    doc.line(line)
            return
        doc.line("#pragma unroll")
        with doc.block(f"for (int s = 0; s < {stages - 1}; ++s)"):
            doc.line("if (s < KT) load_stage(s, s);")
            doc.line("tc_async_commit();")
        with doc.block("for (int kt = 0; kt < KT; ++kt)"):
            doc.line(f"tc_async_wait<{stages - 2}>();")
            doc.line("__syncthreads();")
            doc.line(f"const int next = kt + {stages - 1};")
            doc.line(f"if (next < KT) load_stage(next, next % {stages});")
            doc.line("tc_async_commit();")
            doc.line(f"compute(kt % {stages});")

    def _store(self, row: str, col: str, values: list[str]) -> None:
        """Store ``values`` at ``C(row, col + e)``: one vector store where ``C`` is contiguous and aligned and the
        vector is wholly inside, else element by element with bounds checks."""
        p, doc = self.problem, self.doc
        n, tile_x = len(values), self.tile_x
        aligned = p.c_sx == 1 and tile_x % n == 0 and p.c_sm % n == 0 and p.c_sy % n == 0 and p.x_extent % n == 0
        row = f"({row})"
        with doc.block(f"if ({row} < m_lim)"):
            if n > 1 and aligned:
                doc.line(f"const int p0 = {col}, py = p0 / {tile_x}, px = p0 % {tile_x};")
                with doc.block("if (py < y_lim && px < x_lim)"):
                    vtype = "float4" if n == 4 else "float2"
                    address = f"C + {row} * {p.c_sm} + py * {p.c_sy} + px * {p.c_sx}"
                    doc.line(f"*({vtype}*)({address}) = {vtype}{{{', '.join(values)}}};")
                return
            for e, value in enumerate(values):
                with doc.block(""):
                    doc.line(f"const int p0 = {col} + {e}, py = p0 / {tile_x}, px = p0 % {tile_x};")
                    with doc.block("if (py < y_lim && px < x_lim)"):
                        doc.line(f"C[{row} * {p.c_sm} + py * {p.c_sy} + px * {p.c_sx}] = {value};")

    def epilogue(self) -> None:
        t, p, doc = self.tile, self.problem, self.doc
        if p.precision.uses_tensor_cores:
            warp_m, warp_n = t.warp_tile
            doc.line("#pragma unroll")
            with doc.block(f"for (int mi = 0; mi < {warp_m // 16}; ++mi)"):
                doc.line("#pragma unroll")
                with doc.block(f"for (int ni = 0; ni < {warp_n // 8}; ++ni)"):
                    doc.line("#pragma unroll")
                    with doc.block("for (int h = 0; h < 2; ++h)"):
                        self._store("wm + mi * 16 + g + h * 8", "wn + ni * 8 + 2 * q",
                                    ["acc[mi][ni][2 * h]", "acc[mi][ni][2 * h + 1]"])
            return
        thread_m, thread_n = t.thread_tile
        lanes_n = 32 // t.lanes_m
        rv, cv = min(4, thread_m), min(4, thread_n)
        doc.line("#pragma unroll")
        with doc.block(f"for (int i = 0; i < {thread_m}; ++i)"):
            doc.line("#pragma unroll")
            with doc.block(f"for (int j = 0; j < {thread_n}; j += {cv})"):
                self._store(f"(wm + i / {rv} * {t.lanes_m * rv} + lm * {rv} + i % {rv})",
                            f"wn + j / {cv} * {lanes_n * cv} + ln * {cv}", [f"acc[i][j + {e}]" for e in range(cv)])


def gemm_device_function(tile: GemmTile, problem: GemmProblem, target: Target | None = None) -> DeviceFunction:
    """Check ``tile`` against ``problem`` (and ``target``), generate its device function and register it."""
    check_tile(tile, problem, target)
    text = GemmSource(tile, problem).source()
    name = function_name("tc_gemm", text)
    helpers = (TENSOR_CORE_HELPER,)
    min_blocks = tile.min_blocks if tile.min_blocks > 1 else 0
    stack = 8 * estimated_registers(tile, problem) + 4096  # accumulators, fragments, the emulation's temporaries
    return register_device_function(DeviceFunction(name, text.replace(NAME, name), helpers, synchronizes=True,
                                                   min_blocks=min_blocks, local_bytes=stack, info=(tile, problem)))
