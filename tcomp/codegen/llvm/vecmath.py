"""float32 ``exp``, ``log``, ``tanh``, ``erf`` and ``sigmoid`` as branch-free polynomial code in LLVM IR.

Each function is defined once per LLVM type (``float`` or ``<N x float>``) as an internal, always-inlined function
``tcomp.<op>f.<type>`` of straight-line code (multiplies, FMAs, integer bit operations and selects), so a vector
operand is computed in vector registers at the target's width instead of one libm call per lane, and a scalar call
in a loop that LLVM's loop vectorizer widens becomes vector code as well.

Accuracy (float32, against a float64 reference, measured over every float32 input by ``bench/vecmath.py``): within
4 ulp everywhere, denormal inputs and results included; ``NaN`` in gives ``NaN`` out, infinities give the limits
(``exp(-inf) = 0``, ``tanh(+inf) = 1``, ``log(0) = -inf``, ``log(x < 0) = NaN``). The polynomials are near-minimax
fits (Lawson's iteration on Chebyshev nodes, in float64) rounded to float32: ``bench/vecmath.py --fit`` prints them.

- ``exp``: ``x = n ln2 + r`` (Cody-Waite with a 16-bit ``ln2_hi``, exact in ``n * ln2_hi`` with or without an FMA),
  ``e^r = 1 + r + r^2 q(r)`` on ``|r| <= ln2/2``, times ``2^n`` applied in two steps so results that are denormal
  round once. Vectors of 16 lanes on AVX-512 (and ``exp`` on 2, 4 ... such registers) take a table instead
  (``EXP_TABLE``, ``_exp_by_table``): ``x = (n / 16) ln2 + r``, ``2^(j/16)`` picked per lane by a permute, a cubic on
  ``|r| <= ln2/32``, ``2^floor(n/16)`` by ``vscalefps``; branch-free, within 0.68 ulp (1.01 before), and the
  ``sigmoid`` and ``tanh`` that use it run 0.79-0.96x the time on 128 x 768 rows (softmax 0.97-0.99x).
- ``log``: ``x = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))`` (denormals scaled by ``2^23`` first),
  ``log(m) = f - f^2/2 + f^3 p(f)`` with ``f = m - 1``, plus ``e ln2`` in two parts.
- ``tanh``: ``x + x^3 p(x^2)`` below ``|x| = 0.625``, else ``sign(x) (1 - 2 / (e^{2|x|} + 1))`` with ``2|x|`` clamped
  to 20 (``tanh`` is 1 in float32 from about 9.01 on).
- ``erf``: ``x + x p(x^2)`` below ``|x| = 0.875``, else ``sign(x) (1 - e^{-x^2} q(|x| - 0.875))`` with ``q`` fitted to
  ``erfcx`` on ``[0.875, 4]`` (``|x|`` clamped to 4, where ``erf`` is 1 in float32). Vectors of 16 lanes on AVX-512
  and of 8 on AVX2 take a table instead (``ERF_TABLES``): ``x g(|x|)`` with ``g = erf(x) / x`` a short polynomial
  on each of 16 (8) intervals of ``[0, 4)``, its coefficients picked per lane by a permute (``vpermps``): no
  exponential and one polynomial, half the time of the two branches (GELU on 128 x 768 rows: 33 -> 19 us on
  znver4); within 0.61 ulp (0.79 on AVX2) from ``|x| = 1e-35`` up, 1.03 below, where ``x`` times the polynomial's
  small part underflows into denormals. Vectors of 2, 4 ... such registers (a GEMM epilogue's) take it a register
  at a time.
- ``exp`` (off the table) and ``sigmoid`` on a vector test its lanes once: when every ``|x| <= 87`` (``e^x``
  normal, the common case) the vector takes the reduction and polynomial alone, ``2^n`` in one step, no clamps or
  NaN selects; any other lane sends the whole vector down the general code. Both paths give the same bits in that
  range. Scalars stay branch-free (LLVM's loop vectorizer widens them).
- ``tanh`` and ``erf`` take ``e^y`` of an argument bounded by construction (``[-16, 0]``, ``[0, 20]``): the same
  reduction and polynomial as ``exp`` (or its table) without its clamps and NaN handling, ``2^n`` applied in one
  step.
- ``sigmoid``: ``e = e^{-|x|}``; ``1 / (1 + e)`` for ``x >= 0``, ``e / (1 + e)`` below (no overflow, denormal results
  kept).

Multiply-adds are ``llvm.fmuladd`` (an FMA where the target has one); the algorithms keep their accuracy without.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import llvmlite.ir as ir

from tcomp.codegen.llvm import types as T
from tcomp.codegen.llvm.context import ModuleContext
from tcomp.codegen.llvm.control import if_else

VECTOR_MATH_OPS = ("erf", "exp", "log", "sigmoid", "tanh")

LOG2E = 1.4426950408889634
LN2_HI = 0.693145751953125  # 16 significant bits: n * LN2_HI is exact for |n| < 2^8
LN2_LO = 1.4286067653302226e-06  # ln 2 - LN2_HI
EXP_MAX_INPUT = 89.0  # e^89 overflows float32: the result is +inf
EXP_MIN_INPUT = -104.0  # e^-104 is below half the smallest denormal: the result is 0
NORMAL_EXP_LIMIT = 87.0  # e^x for |x| <= 87 is a normal float32 (2^n with n in [-126, 126]): one scaling step
SQRT_HALF_BITS = 0x3F3504F3  # float32 sqrt(1/2)
MANTISSA_MASK = 0x007FFFFF
MIN_NORMAL = 2.0**-126

# e^r = 1 + r + r^2 q(r), |r| <= ln2/2
EXP_Q = (0.4999999403953552, 0.1666652113199234, 0.04166838899254799, 0.008368710055947304, 0.001381461275741458)
# log(1 + f) = f - f^2/2 + f^3 p(f), f in [sqrt(1/2) - 1, sqrt(2) - 1]
LOG_P = (0.3333331346511841, -0.25000008940696716, 0.2000211924314499, -0.1666799634695053, 0.14219552278518677,
         -0.1240558922290802, 0.11888162791728973, -0.11675651371479034, 0.0674663856625557)
# tanh(x) = x + x^3 p(x^2), |x| < 0.625
TANH_SMALL = 0.625
TANH_CLAMP = 20.0  # 2|x| beyond which tanh(x) rounds to 1 in float32 (from about 18.02 on)
TANH_P = (-0.3333333134651184, 0.1333320587873459, -0.05394676327705383, 0.021700702607631683,
          -0.008177398703992367, 0.0021429620683193207)
# erf(x) = x + x p(x^2), |x| < 0.875 (the fit's x p(x^2) less x: the leading term stays exact)
ERF_SMALL = 0.875
ERF_P = (0.12837916709551256, -0.37612634897232056, 0.11283732950687408, -0.026861585676670074, 0.005206748377531767,
         -0.0008211113745346665, 8.675432036397979e-05)
# erfc(x) = e^{-x^2} q(x - 0.875), 0.875 <= x <= 4
ERF_CLAMP = 4.0
ERFC_Q = (0.4643115699291229, -0.31583350896835327, 0.1879473477602005, -0.10082577168941498, 0.04942278563976288,
          -0.02187553234398365, 0.008261787705123425, -0.0023830553982406855, 0.00044237656402401626,
          -3.806784297921695e-05)

# erf(x) = x g(|x|) by table on vectors of 16 (AVX-512) or 8 (AVX2) lanes: [0, 4) cut into as many intervals as
# lanes, ``g = erf(x) / x`` a polynomial in ``u = |x| lanes / 4 - (k + 1/2)`` on interval ``k`` (degree 5 on 16
# intervals, 6 on 8; fitted to a relative error of 0.04 and 0.13 ulp), its coefficients picked per lane by one
# permute each. ERF_TABLES[lanes]: rows of one coefficient per interval: the constant term in two parts (the float32
# nearest, then the rest), then the coefficients of u, u^2 ...
ERF_TABLES = {
    16: (
        (1.1225296258926392, 1.0776450634002686, 0.9971854090690613, 0.896085798740387, 0.7896784543991089,
         0.6895782351493835, 0.6021192073822021, 0.5290613770484924, 0.4693392813205719, 0.42072296142578125,
         0.3808741569519043, 0.34780943393707275, 0.31999683380126953, 0.29629576206207275, 0.2758619785308838,
         0.25806450843811035),
        (9.592645788814025e-09, 2.7291456206057774e-08, 3.4389180392224716e-09, -1.2610583688399402e-08,
         -2.451949221438099e-08, 2.6486568494021867e-10, 1.2893165646232774e-08, -1.3459249714742327e-08,
         -1.4506176260198345e-09, 1.1716546843842934e-08, -1.4463260811226064e-08, 7.846321814497514e-09,
         -7.426851911240817e-10, -3.6105269884956215e-09, 9.029383463143859e-09, -3.271682480487925e-09),
        (-0.02328873611986637, -0.06486152112483978, -0.09347435086965561, -0.10609735548496246, -0.10475654900074005,
         -0.09440335631370544, -0.08025337755680084, -0.06606873869895935, -0.053764525800943375, -0.0438648946583271,
         -0.036164406687021255, -0.0302190613001585, -0.025594566017389297, -0.021946890279650688,
         -0.019024811685085297, -0.01664930023252964),
        (-0.022852644324302673, -0.018030954524874687, -0.010329053737223148, -0.002483184216544032,
         0.0033869880717247725, 0.006516713183373213, 0.00731717050075531, 0.006712587084621191, 0.005553967785090208,
         0.0043669696897268295, 0.0033724934328347445, 0.002609606133773923, 0.002043516840785742,
         0.0016248973552137613, 0.0013119166251271963, 0.0010741265723481774),
        (0.0008652693359181285, 0.0022341390140354633, 0.002739750314503908, 0.0023687630891799927,
         0.0015035920077934861, 0.0006098966696299613, -2.1465119061758742e-05, -0.0003329909814056009,
         -0.0004104820254724473, -0.0003693487960845232, -0.00029208132764324546, -0.00021875713719055057,
         -0.00016148164286278188, -0.00011993428051937371, -9.03965556062758e-05, -6.928524089744315e-05),
        (0.00041427515679970384, 0.0002449154562782496, 7.735709004919045e-06, -0.000173438063939102,
         -0.00023569335462525487, -0.0001970271987374872, -0.00011635430564638227, -4.402889317134395e-05,
         -4.975042884325376e-07, 1.7093845599447377e-05, 1.969260847545229e-05, 1.645675911277067e-05,
         1.2232117114763241e-05, 8.732424248591997e-06, 6.2104445532895625e-06, 4.470745807338972e-06),
        (-1.898854497994762e-05, -4.511924271355383e-05, -4.5332340960158035e-05, -2.4906566977733746e-05,
         -6.349004024741589e-07, 1.4047498552827165e-05, 1.6503367078257725e-05, 1.1761674613808282e-05,
         5.7743573051993735e-06, 1.6386280776714557e-06, -2.984519085202919e-07, -8.434715823568695e-07,
         -7.956626859595417e-07, -5.985298230370972e-07, -4.1737328615454317e-07, -2.8630259407691483e-07),
    ),
    8: (
        (1.105305552482605, 0.9482074975967407, 0.7383201122283936, 0.5638123750686646, 0.4437943398952484,
         0.3635997772216797, 0.30769097805023193, 0.2666666507720947),
        (7.139805191513915e-09, 1.4296568373595164e-08, -8.876179791172945e-09, 8.374824389534297e-09,
         8.185342181832311e-09, -3.368111123336348e-09, 5.715677264817032e-09, -1.443196762096477e-08),
        (-0.09058274328708649, -0.20351755619049072, -0.2007196545600891, -0.14601069688796997, -0.09703376889228821,
         -0.06600245088338852, -0.047332584857940674, -0.035555433481931686),
        (-0.08383771032094955, -0.02505439892411232, 0.02115749940276146, 0.028523605316877365, 0.019777491688728333,
         0.01185387559235096, 0.007274637930095196, 0.004740504082292318),
        (0.013086479157209396, 0.021165529265999794, 0.008292722515761852, -0.001709149219095707,
         -0.003188477596268058, -0.0020299330353736877, -0.0011116486275568604, -0.0006317933439277112),
        (0.0055633289739489555, -0.0015534927370026708, -0.003623528406023979, -0.0012297761859372258,
         0.00017828242562245578, 0.0002950425841845572, 0.00016552179295103997, 8.400963270105422e-05),
        (-0.0010928285773843527, -0.0011647077044472098, 0.0002526893513277173, 0.0004644367436412722,
         0.00011161754810018465, -2.1083118554088287e-05, -2.2410058591049165e-05, -1.1114261724287644e-05),
        (-0.00028019692399539053, 0.00022117453045211732, 0.00015596440061926842, -5.176337799639441e-05,
         -4.4002834329148754e-05, -5.650334060192108e-06, 2.1256837499095127e-06, 1.3949338608654216e-06),
    ),
}
_PERMUTES = {16: ("llvm.x86.avx512.permvar.sf.512", "avx512f"), 8: ("llvm.x86.avx2.permps", "avx2")}
# e^x = 2^(n/16) e^r on 16 lanes of AVX-512: 2^(j/16) in two float32 parts (EXP_TABLE: the nearest float32, then the
# rest), ``n mod 16`` picks them per lane, ``vscalefps`` applies 2^floor(n/16); e^r - 1 = r + r^2 (1/2 + r/6) on
# |r| <= ln2/32 (truncation 0.08 ulp)
_EXP_HI = tuple(struct.unpack("f", struct.pack("f", 2.0 ** (j / 16)))[0] for j in range(16))
EXP_TABLE = (_EXP_HI, tuple(struct.unpack("f", struct.pack("f", 2.0 ** (j / 16) - hi))[0]
                            for j, hi in enumerate(_EXP_HI)))
_AVX512 = {"cvt": "llvm.x86.avx512.mask.cvtps2dq.512", "scalef": "llvm.x86.avx512.mask.scalef.ps.512"}
_CURRENT_ROUNDING = 4  # the intrinsics' rounding argument: MXCSR's mode (to nearest, even)


def call_vector_math(ctx: ModuleContext, builder: ir.IRBuilder, op: str, x: ir.Value) -> ir.Value:
    """``op(x)`` for a ``float`` or ``<N x float>`` value ``x`` (``op`` in ``VECTOR_MATH_OPS``)."""
    return builder.call(_function(ctx, op, x.type), [x])


def _function(ctx: ModuleContext, op: str, ty: ir.Type) -> ir.Function:
    name = f"tcomp.{op}f.{T.intrinsic_suffix(ty)}"
    existing = ctx.module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    fn = ir.Function(ctx.module, ir.FunctionType(ty, [ty]), name=name)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    m = _Math(ctx, ir.IRBuilder(fn.append_basic_block("entry")), ty)
    body = {"exp": _exp, "log": _log, "tanh": _tanh, "erf": _erf, "sigmoid": _sigmoid}[op]
    m.b.ret(body(m, fn.args[0]))
    return fn


class _Math:
    """Builds float32 arithmetic on values of one type (scalar or vector), with integer views of the same width."""

    def __init__(self, ctx: ModuleContext, builder: ir.IRBuilder, ty: ir.Type) -> None:
        self.ctx = ctx
        self.b = builder
        self.ty = ty
        self.lanes = ty.count if isinstance(ty, ir.VectorType) else 1
        self.ity = T.with_lanes_type(T.I32, self.lanes)

    def f(self, value: float) -> ir.Constant:
        return T.constant(value, "float32" if self.lanes == 1 else f"float32x{self.lanes}")

    def i(self, value: int) -> ir.Constant:
        return T.constant(value, "int32" if self.lanes == 1 else f"int32x{self.lanes}")

    def intrinsic(self, name: str, *args: ir.Value) -> ir.Value:
        ty = args[0].type
        fn = self.ctx.declare(f"{name}.{T.intrinsic_suffix(ty)}", ty, [a.type for a in args])
        return self.b.call(fn, list(args))

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        return self.intrinsic("llvm.fmuladd", a, b, c)

    def pick(self, row: tuple[float, ...], index: ir.Value) -> ir.Value:
        """Each lane's entry of the constant ``row`` (as many entries as lanes) at that lane's int32 ``index`` (its
        low bits): one ``vpermps`` (``_PERMUTES``)."""
        permute = self.ctx.declare(_PERMUTES[self.lanes][0], self.ty, [self.ty, self.ity])
        table = ir.Constant(self.ty, [ir.Constant(ir.FloatType(), v) for v in row])
        return self.b.call(permute, [table, index])

    def poly(self, x: ir.Value, coefficients: tuple[float, ...]) -> ir.Value:
        """``sum(c[k] x^k)`` by Horner's rule."""
        acc = self.f(coefficients[-1])
        for c in coefficients[-2::-1]:
            acc = self.fma(acc, x, self.f(c))
        return acc

    def fabs(self, x: ir.Value) -> ir.Value:
        return self.intrinsic("llvm.fabs", x)

    def copysign(self, magnitude: ir.Value, sign: ir.Value) -> ir.Value:
        return self.intrinsic("llvm.copysign", magnitude, sign)

    def is_nan(self, x: ir.Value) -> ir.Value:
        return self.b.fcmp_unordered("uno", x, x)

    def to_bits(self, x: ir.Value) -> ir.Value:
        return self.b.bitcast(x, self.ity)

    def from_bits(self, x: ir.Value) -> ir.Value:
        return self.b.bitcast(x, self.ty)

    def pow2(self, n: ir.Value) -> ir.Value:
        """``2^n`` for an int32 ``n`` in [-126, 127]: the exponent field set directly."""
        return self.from_bits(self.b.shl(self.b.add(n, self.i(127)), self.i(23)))


def _exp_finite(m: _Math, x: ir.Value) -> ir.Value:
    """``e^x`` for ``x`` that is not NaN (infinities and out-of-range values give ``inf`` or 0)."""
    b = m.b
    x = b.select(b.fcmp_ordered(">", x, m.f(EXP_MAX_INPUT)), m.f(EXP_MAX_INPUT), x)
    x = b.select(b.fcmp_ordered("<", x, m.f(EXP_MIN_INPUT)), m.f(EXP_MIN_INPUT), x)
    n = m.intrinsic("llvm.roundeven", b.fmul(x, m.f(LOG2E)))
    r = m.fma(n, m.f(-LN2_HI), x)
    r = m.fma(n, m.f(-LN2_LO), r)
    q = m.poly(r, EXP_Q)
    p = b.fadd(m.fma(b.fmul(r, r), q, r), m.f(1.0))
    ni = b.fptosi(n, m.ity)
    half = b.ashr(ni, m.i(1))
    return b.fmul(b.fmul(p, m.pow2(half)), m.pow2(b.sub(ni, half)))


def _exp_normal(m: _Math, x: ir.Value) -> ir.Value:
    """``e^x`` for ``x`` known to lie in ``[-87, 88]`` (not NaN), where ``e^x`` is a normal float32: the reduction
    and polynomial of ``_exp_finite`` without its clamps, and ``2^n`` (``n`` in [-126, 127]) applied in one step.
    For arguments bounded by construction (``erf``'s ``-x^2`` with ``|x| <= 4``, ``tanh``'s clamped ``2|x|``)."""
    b = m.b
    n = m.intrinsic("llvm.roundeven", b.fmul(x, m.f(LOG2E)))
    r = m.fma(n, m.f(-LN2_HI), x)
    r = m.fma(n, m.f(-LN2_LO), r)
    p = b.fadd(m.fma(b.fmul(r, r), m.poly(r, EXP_Q), r), m.f(1.0))
    return b.fmul(p, m.pow2(b.fptosi(n, m.ity)))


def _normal_range(m: _Math, x: ir.Value) -> ir.Value:
    """An ``i1``: whether every lane of ``x`` has ``|x| <= NORMAL_EXP_LIMIT`` (false where one is NaN)."""
    inside = m.b.fcmp_ordered("<=", m.fabs(x), m.f(NORMAL_EXP_LIMIT))
    if m.lanes == 1:
        return inside
    mask = ir.IntType(m.lanes)
    return m.b.icmp_unsigned("==", m.b.bitcast(inside, mask), ir.Constant(mask, (1 << m.lanes) - 1))


def _by_range(m: _Math, x: ir.Value, fast: Callable[[ir.Value], ir.Value],
              general: Callable[[ir.Value], ir.Value]) -> ir.Value:
    """``fast(x)`` when every lane of the vector ``x`` is in ``[-NORMAL_EXP_LIMIT, NORMAL_EXP_LIMIT]``, else
    ``general(x)``: one branch per vector. The two must give the same results in that range. A scalar takes
    ``general`` alone, branch-free, so that LLVM's loop vectorizer still widens a loop that calls it."""
    if m.lanes == 1:
        return general(x)
    return if_else(m.b, _normal_range(m, x), lambda: fast(x), lambda: general(x), "exp_range")


def _exp(m: _Math, x: ir.Value) -> ir.Value:
    if _exp_table_lanes(m):
        return _per_register(m, x, "exp", 16, lambda: _exp_by_table(m, x, clamp=True))

    def general(v: ir.Value) -> ir.Value:
        nan = m.is_nan(v)
        return m.b.select(nan, v, _exp_finite(m, m.b.select(nan, m.f(0.0), v)))

    return _by_range(m, x, lambda v: _exp_normal(m, v), general)


def _log(m: _Math, x: ir.Value) -> ir.Value:
    b = m.b
    denormal = b.fcmp_ordered("<", x, m.f(MIN_NORMAL))
    scaled = b.select(denormal, b.fmul(x, m.f(2.0**23)), x)
    offset = b.sub(m.to_bits(scaled), m.i(SQRT_HALF_BITS))
    exponent = b.ashr(offset, m.i(23))
    mantissa = m.from_bits(b.add(b.and_(offset, m.i(MANTISSA_MASK)), m.i(SQRT_HALF_BITS)))
    e = b.fsub(b.sitofp(exponent, m.ty), b.select(denormal, m.f(23.0), m.f(0.0)))
    f = b.fsub(mantissa, m.f(1.0))
    z = b.fmul(f, f)
    y = b.fmul(b.fmul(f, z), m.poly(f, LOG_P))
    y = m.fma(e, m.f(LN2_LO), y)
    y = m.fma(z, m.f(-0.5), y)
    result = m.fma(e, m.f(LN2_HI), b.fadd(f, y))
    result = b.select(b.fcmp_ordered("==", x, m.f(float("inf"))), x, result)
    result = b.select(b.fcmp_ordered("==", x, m.f(0.0)), m.f(float("-inf")), result)
    result = b.select(b.fcmp_ordered("<", x, m.f(0.0)), m.f(float("nan")), result)
    return b.select(m.is_nan(x), x, result)


def _tanh(m: _Math, x: ir.Value) -> ir.Value:
    b = m.b
    a = m.fabs(x)
    z = b.fmul(x, x)
    small = m.fma(b.fmul(x, z), m.poly(z, TANH_P), x)
    # tanh(x) rounds to 1 from |x| = 9.01 on: 2|x| clamped to 20 (NaN becomes 20 too; the result is chosen below)
    doubled = b.fadd(a, a)
    e = _exp_bounded(m, b.select(b.fcmp_ordered("<", doubled, m.f(TANH_CLAMP)), doubled, m.f(TANH_CLAMP)))
    large = b.fsub(m.f(1.0), b.fdiv(m.f(2.0), b.fadd(e, m.f(1.0))))
    result = m.copysign(b.select(b.fcmp_ordered("<", a, m.f(TANH_SMALL)), small, large), x)  # tanh(-0) = -0
    return b.select(m.is_nan(x), x, result)


def _table_lanes(m: _Math) -> int:
    """The widest table width (``_PERMUTES``) the target permutes by whose power-of-two multiple ``m``'s lanes
    are, 0 if none: 16 for 32 lanes on AVX-512 (a GEMM epilogue's two registers), 8 for 8, 16 or 32 on AVX2."""
    for width, (_, feature) in _PERMUTES.items():
        parts = m.lanes // width
        if m.lanes % width == 0 and parts & (parts - 1) == 0 and m.ctx.target.has_feature(feature):
            return width
    return 0


def _exp_table_lanes(m: _Math) -> int:
    """16 where ``m``'s vectors are a power-of-two number of 16-lane AVX-512 registers (``_exp_by_table``), else 0."""
    return 16 if _table_lanes(m) == 16 else 0


def _per_register(m: _Math, x: ir.Value, op: str, width: int, one: Callable[[], ir.Value]) -> ir.Value:
    """``op`` of ``x`` on ``width``-lane registers: ``one()`` where ``x`` is one register, else ``op``'s function on
    registers applied to each part (``_by_parts``)."""
    if width == m.lanes:
        return one()
    return _by_parts(m, x, width, _function(m.ctx, op, ir.VectorType(m.ty.element, width)))


def _exp_bounded(m: _Math, x: ir.Value) -> ir.Value:
    """``e^x`` for ``x`` in ``[-87, 88]``: by table on one AVX-512 register, else ``_exp_normal``."""
    return _exp_by_table(m, x, clamp=False) if _exp_table_lanes(m) == m.lanes else _exp_normal(m, x)


def _exp_by_table(m: _Math, x: ir.Value, clamp: bool) -> ir.Value:
    """``e^x`` on one AVX-512 register, branch-free: ``n`` the nearest integer to ``16 x / ln2``, ``r = x - n ln2 /
    16`` (Cody-Waite, ``|r| <= ln2/32``), ``2^(n/16) e^r = 2^floor(n/16) T[n mod 16] (1 + p(r))`` with ``T`` in
    two parts (``T_hi + (T_hi p + T_lo)``) and the power of two applied by ``vscalefps``, which rounds a denormal
    result once and overflows to infinity. ``clamp``: bound ``x`` to ``[-104, 89]`` first (NaN passes: the
    conversion gives a defined index for it and every step keeps NaN); without, the caller bounds ``x``."""
    b = m.b
    if clamp:
        x = b.select(b.fcmp_ordered(">", x, m.f(EXP_MAX_INPUT)), m.f(EXP_MAX_INPUT), x)
        x = b.select(b.fcmp_ordered("<", x, m.f(EXP_MIN_INPUT)), m.f(EXP_MIN_INPUT), x)
    t = b.fmul(x, m.f(16 * LOG2E))
    n = m.intrinsic("llvm.roundeven", t)
    all_lanes = ir.Constant(ir.IntType(16), -1)
    cvt = m.ctx.declare(_AVX512["cvt"], m.ity, [m.ty, m.ity, all_lanes.type, T.I32])
    k = b.call(cvt, [t, ir.Constant(m.ity, None), all_lanes, T.I32(_CURRENT_ROUNDING)])  # n as int32; NaN defined
    r = m.intrinsic("llvm.fma", n, m.f(-LN2_HI / 16), x)
    r = m.intrinsic("llvm.fma", n, m.f(-LN2_LO / 16), r)
    high, low = (m.pick(part, k) for part in EXP_TABLE)
    p = m.fma(b.fmul(r, r), m.fma(r, m.f(1.0 / 6.0), m.f(0.5)), r)
    y = b.fadd(high, m.intrinsic("llvm.fma", high, p, low))  # 2^(j/16) (1 + p), rounded once where it matters
    scalef = m.ctx.declare(_AVX512["scalef"], m.ty, [m.ty, m.ty, m.ty, all_lanes.type, T.I32])
    return b.call(scalef, [y, b.fmul(n, m.f(1.0 / 16.0)), ir.Constant(m.ty, None), all_lanes,
                           T.I32(_CURRENT_ROUNDING)])


def _erf(m: _Math, x: ir.Value) -> ir.Value:
    width = _table_lanes(m)
    if width:  # one table-wide register, or a whole number of them: each by the table, put back together
        return _per_register(m, x, "erf", width, lambda: _erf_by_table(m, x, ERF_TABLES[width]))
    b = m.b
    a = m.fabs(x)
    small = m.fma(x, m.poly(b.fmul(x, x), ERF_P), x)
    clamped = b.select(b.fcmp_ordered("<", a, m.f(ERF_CLAMP)), a, m.f(ERF_CLAMP))  # NaN becomes 4 here
    erfc = b.fmul(_exp_normal(m, b.fneg(b.fmul(clamped, clamped))),  # e^-16 and above: normal
                  m.poly(b.fsub(clamped, m.f(ERF_SMALL)), ERFC_Q))
    large = m.copysign(b.fsub(m.f(1.0), erfc), x)
    result = b.select(b.fcmp_ordered("<", a, m.f(ERF_SMALL)), small, large)
    return b.select(m.is_nan(x), x, result)


def _by_parts(m: _Math, x: ir.Value, width: int, fn: ir.Function) -> ir.Value:
    """``fn`` applied to each ``width``-lane part of ``x`` (a power-of-two number of them), the results joined in
    order."""
    b = m.b
    parts = [b.call(fn, [b.shuffle_vector(x, ir.Constant(m.ty, ir.Undefined), ir.Constant(
        ir.VectorType(ir.IntType(32), width), list(range(start, start + width))))])
        for start in range(0, m.lanes, width)]
    while len(parts) > 1:  # join neighbours pairwise: each shuffle doubles the width
        count = 2 * parts[0].type.count
        mask = ir.Constant(ir.VectorType(ir.IntType(32), count), list(range(count)))
        parts = [b.shuffle_vector(left, right, mask) for left, right in zip(parts[::2], parts[1::2])]
    return parts[0]


def _erf_by_table(m: _Math, x: ir.Value, tables: tuple[tuple[float, ...], ...]) -> ir.Value:
    """``erf`` on a vector of as many lanes as intervals (``ERF_TABLES``): each lane's coefficients are picked from
    the tables by its interval, one permute per coefficient, and ``x g`` rounds once. ``|x| >= 4`` (``erf`` is 1
    in float32 from 3.9192 on) gives ``copysign(1, x)``; NaN takes the last interval and stays NaN."""
    b = m.b
    a = m.fabs(x)
    scaled = b.fmul(a, m.f(m.lanes / ERF_CLAMP))  # interval units: a power of two, exact
    scaled = b.select(b.fcmp_ordered("<", scaled, m.f(m.lanes)), scaled, m.f(m.lanes - 0.5))
    k = b.fptosi(scaled, m.ity)
    u = b.fsub(scaled, b.fadd(b.sitofp(k, m.ty), m.f(0.5)))
    tail = m.pick(tables[-1], k)  # g less its constant term's float32 part
    for row in tables[-2:0:-1]:
        tail = m.fma(tail, u, m.pick(row, k))
    # x c0 exact inside a fused multiply-add (llvm.fma, not fmuladd: it must fuse): one rounding for the result
    result = m.intrinsic("llvm.fma", x, m.pick(tables[0], k), b.fmul(x, tail))
    return b.select(b.fcmp_ordered(">=", a, m.f(ERF_CLAMP)), m.copysign(m.f(1.0), x), result)


def _sigmoid(m: _Math, x: ir.Value) -> ir.Value:
    b = m.b

    def quotient(v: ir.Value, e: ir.Value) -> ir.Value:
        numerator = b.select(b.fcmp_ordered(">=", v, m.f(0.0)), m.f(1.0), e)
        return b.fdiv(numerator, b.fadd(m.f(1.0), e))

    def general(v: ir.Value) -> ir.Value:
        nan = m.is_nan(v)
        return b.select(nan, v, quotient(v, _exp_finite(m, b.fneg(m.fabs(b.select(nan, m.f(0.0), v))))))

    return _by_range(m, x, lambda v: quotient(v, _exp_bounded(m, b.fneg(m.fabs(v)))), general)
