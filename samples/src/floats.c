/* floats: float/double arithmetic and conversions.
 * printf %f %e %g %.17g, sqrt, fma, int<->float conversions (in range),
 * float<->double, strtod, rounding modes (fesetround + rint/lrint),
 * comparisons with NaN/inf, printing NaN/inf, raw bit patterns.
 *
 * Portability notes (output must be identical on every ISA and libc):
 *  - built with -ffp-contract=off, so a*b+c is never fused implicitly;
 *  - the sign of a NaN produced by an invalid operation differs between
 *    ISAs (x86 makes a negative NaN), so NaNs are printed via show(), which
 *    prints "nan" without a sign, and their bits are never printed;
 *  - transcendental functions (libm, may differ in the last ulp between
 *    glibc and musl) are printed with 12 significant digits only. */
#include <fenv.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *show(double x, char *buf, size_t n)
{
    if (isnan(x))
        snprintf(buf, n, "nan");
    else
        snprintf(buf, n, "%.17g", x);
    return buf;
}

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

int main(void)
{
    char b1[64], b2[64];
    volatile double a = 1.0 / 3.0, b = 2.5e-3, c = -12345.678, big = 1e300;
    volatile double zero = 0.0, one = 1.0;

    printf("a=%f b=%e c=%g\n", a, b, c);
    printf("a=%.17g b=%.17g c=%.17g\n", a, b, c);
    printf("a+b=%.17g a-b=%.17g a*c=%.17g c/a=%.17g\n", a + b, a - b, a * c, c / a);
    printf("%%f: %f %f %f %.0f %.10f\n", 0.5, 1.5, 2.5, 2.5, 1e-7);
    printf("%%e: %e %.3e %E %.0e\n", 123456.789, 1e-300, 6.02214076e23, 5e-324);
    printf("%%g: %g %g %g %g %.3g %#g\n", 100000.0, 1000000.0, 1e-5, 0.0001, 3.14159, 2.0);
    printf("widths: [%10.3f] [%-10.2e] [%+g] [% g] [%010.4f]\n", 3.14159, 2.71828, 1.0, 2.0, -1.5);
    printf("big*big=%g -big*big=%g big*big-big*big=%s\n", big * big, -big * big,
           show(big * big - big * big, b1, sizeof b1));
    printf("0/0=%s 1/0=%g -1/0=%g\n", show(zero / zero, b1, sizeof b1), one / zero,
           -one / zero);
    printf("-0.0=%g bits=%016" PRIx64 " signbit=%d\n", -zero, dbits(-zero),
           signbit(-zero) != 0);

    /* comparisons with NaN and inf */
    volatile double nan_ = NAN, inf = INFINITY;
    printf("nan==nan %d nan!=nan %d nan<1 %d nan>1 %d nan<=inf %d isnan %d isinf %d\n",
           nan_ == nan_, nan_ != nan_, nan_ < 1, nan_ > 1, nan_ <= inf, isnan(nan_) != 0,
           isinf(inf) != 0);
    printf("inf>1e308 %d -inf<-1e308 %d inf==inf %d inf-inf=%s inf*0=%s\n", inf > 1e308,
           -inf < -1e308, inf == inf, show(inf - inf, b1, sizeof b1),
           show(inf * zero, b2, sizeof b2));
    printf("fmax(nan,1)=%g fmin(nan,-1)=%g fmax(-0,0) signbit=%d\n", fmax(nan_, 1.0),
           fmin(nan_, -1.0), signbit(fmax(-0.0, 0.0)) != 0);
    printf("isfinite: %d %d %d, fpclassify(min/2)==SUBNORMAL %d\n", isfinite(1.0) != 0,
           isfinite(inf) != 0, isfinite(nan_) != 0,
           fpclassify(DBL_MIN / 2) == FP_SUBNORMAL);

    /* sqrt and fma are correctly rounded everywhere */
    for (int i = 0; i < 6; i++) {
        volatile double x = (double)(i * i * 7 + 2) / 3.0;
        printf("sqrt(%.17g)=%.17g sqrtf=%.9g\n", x, sqrt(x), (double)sqrtf((float)x));
    }
    volatile double fx = 1.0 + DBL_EPSILON, fy = 1.0 - DBL_EPSILON, fz = -1.0;
    printf("fma(1+e,1-e,-1)=%.17g naive=%.17g\n", fma(fx, fy, fz), fx * fy + fz);
    printf("fmaf=%.9g\n", (double)fmaf(1.0f + FLT_EPSILON, 1.0f - FLT_EPSILON, -1.0f));
    printf("sqrt(-1)=%s\n", show(sqrt(-one), b1, sizeof b1));

    /* float arithmetic and float<->double */
    volatile float f1 = 1.1f, f2 = 3.3f, f3 = 16777216.0f;
    printf("f1+f2=%.9g f1*f2=%.9g f2/f1=%.9g f3+1=%.9g bits=%08" PRIx32 "\n",
           (double)(f1 + f2), (double)(f1 * f2), (double)(f2 / f1), (double)(f3 + 1.0f),
           fbits(f1 * f2));
    volatile double d1 = 0.1;
    float fd = (float)d1;
    double df = fd;
    printf("(float)0.1=%.9g back=%.17g bits=%08" PRIx32 "/%016" PRIx64 "\n",
           (double)fd, df, fbits(fd), dbits(df));
    volatile double huge = 1e40, tiny = 1e-50;
    printf("(float)1e40=%g (float)1e-50=%g\n", (double)(float)huge, (double)(float)tiny);

    /* int <-> float conversions, in range */
    static const double cv[] = {0.0, 0.4, 0.5, 0.6, 1.5, 2.5, -0.5, -1.5, -2.7,
                                123456789.987, -2147483648.0, 2147483647.0,
                                9007199254740993.0, -9.2e18, 1.8e19};
    for (unsigned i = 0; i < sizeof cv / sizeof cv[0]; i++) {
        volatile double x = cv[i];
        long long ll = (x >= -9.2e18 && x <= 9.2e18) ? (long long)x : 0;
        unsigned long long ull = (x >= 0 && x < 1.8446744073709552e19) ? (unsigned long long)x : 0;
        int ii = (x > -2147483649.0 && x < 2147483648.0) ? (int)x : 0;
        unsigned uu = (x >= 0 && x < 4294967296.0) ? (unsigned)x : 0;
        printf("cvt %.17g: ll=%lld ull=%llu i=%d u=%u round=%g lround=%ld\n", x, ll, ull,
               ii, uu, round(x), (x > -9e18 && x < 9e18) ? lround(x) : 0L);
    }
    static const long long iv[] = {0, 1, -1, 16777217, -16777217, 9007199254740993LL,
                                   INT64_MAX, INT64_MIN, 123456789012345LL};
    for (unsigned i = 0; i < sizeof iv / sizeof iv[0]; i++) {
        volatile long long v = iv[i];
        volatile unsigned long long uv = (unsigned long long)iv[i];
        printf("i2f %lld: d=%.17g f=%.9g ud=%.17g uf=%.9g\n", v, (double)v,
               (double)(float)v, (double)uv, (double)(float)uv);
    }

    /* rounding modes */
    static const int modes[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
    static const char *mnames[] = {"nearest", "upward", "downward", "towardzero"};
    /* results are computed in each mode, but printed in round-to-nearest
       (glibc's printf honours the rounding mode, musl's does not) */
    for (int m = 0; m < 4; m++) {
        fesetround(modes[m]);
        volatile double x = 2.5, y = -2.5, z = 1.0, w = 3.0;
        /* volatile stores keep the computations before the mode switch */
        volatile double r1 = rint(x), r2 = rint(y), r4 = z / w, r5 = nearbyint(-0.5 * z);
        volatile long r3 = lrint(x + z);
        volatile float r6 = (float)z / (float)w;
        fesetround(FE_TONEAREST);
        printf("mode %-10s: rint(2.5)=%g rint(-2.5)=%g lrint(3.5)=%ld 1/3=%.17g nearbyint(-0.5)=%g 1f/3f bits=%08" PRIx32 "\n",
               mnames[m], r1, r2, r3, r4, r5, fbits(r6));
    }
    fesetround(FE_TONEAREST);
    feclearexcept(FE_ALL_EXCEPT);
    volatile double q = one / zero;
    (void)q;
    printf("FE_DIVBYZERO raised %d\n", fetestexcept(FE_DIVBYZERO) != 0);
    feclearexcept(FE_ALL_EXCEPT);
    q = one / 3.0;
    printf("FE_INEXACT raised %d FE_INVALID raised %d\n", fetestexcept(FE_INEXACT) != 0,
           fetestexcept(FE_INVALID) != 0);

    /* strtod */
    static const char *strs[] = {"3.14159", "-0.0", "1e308", "1e309", "4.9e-324",
                                 "0x1.8p3", "  42abc", "inf", "-Infinity", "nan",
                                 "2.2250738585072011e-308", "123456789012345678901234567890"};
    for (unsigned i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        char *end;
        double v = strtod(strs[i], &end);
        printf("strtod(\"%s\")=%s bits=%016" PRIx64 " consumed=%d\n", strs[i],
               show(v, b1, sizeof b1), isnan(v) ? 0 : dbits(v), (int)(end - strs[i]));
    }
    printf("strtof(\"0.1\")=%.9g atof(\"1.5e2\")=%g\n", (double)strtof("0.1", NULL), atof("1.5e2"));

    /* a little numeric loop: harmonic sums in float and double */
    float hf = 0;
    double hd = 0;
    for (int i = 1; i <= 100000; i++) {
        hf += 1.0f / (float)i;
        hd += 1.0 / (double)i;
    }
    printf("harmonic f=%.9g d=%.17g\n", (double)hf, hd);

    /* libm transcendental functions: 12 significant digits only */
    volatile double t = 0.75;
    printf("exp=%.12g log=%.12g sin=%.12g cos=%.12g atan2=%.12g pow=%.12g\n", exp(t),
           log(t), sin(t), cos(t), atan2(t, -1.0), pow(t, 3.5));
    printf("floor=%g ceil=%g trunc=%g fmod=%g copysign=%g fabs=%g\n", floor(-2.5), ceil(-2.5),
           trunc(-2.5), fmod(10.5, 3.0), copysign(3.0, -0.0), fabs(-7.25));
    int ex;
    double ip;
    double fr = frexp(48.0, &ex);
    double mf = modf(3.75, &ip);
    printf("ldexp=%.17g frexp=%.17g/%d modf=%.17g/%.17g\n", ldexp(0.75, 10), fr, ex, mf, ip);
    return 0;
}
