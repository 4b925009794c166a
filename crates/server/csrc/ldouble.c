/* INCRBYFLOAT arithmetic in C `long double`, the type Redis 7.0 uses.
 *
 * Rust has no long double, and INCRBYFLOAT's replies depend on it (80-bit
 * extended precision on x86_64): "10.5" + "5.0e3" prints as
 * "5010.60000000000000009". Parsing follows Redis's string2ld and
 * formatting its ld2string in LD_STR_HUMAN mode, so the bytes agree. */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Redis's MAX_LONG_DOUBLE_CHARS: longer inputs are rejected, and every
 * finite long double printed with "%.17Lf" fits. */
#define LD_CHARS (5 * 1024)

enum {
    LD_NOT_FLOAT = -1,
    LD_NAN_OR_INF = -2,
};

/* string2ld: strtold over the whole text; no leading space, no NaN, no
 * overflow and no underflow to zero. */
static int parse(const char *s, size_t len, long double *out) {
    char buf[LD_CHARS];
    char *end;
    long double v;

    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    v = strtold(buf, &end);
    if (isspace((unsigned char)buf[0]) || end[0] != '\0' || (size_t)(end - buf) != len ||
        (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL || fpclassify(v) == FP_ZERO)) ||
        errno == EINVAL || isnan(v))
        return 0;
    *out = v;
    return 1;
}

/* Adds `incr` to `cur` (a NULL `cur` is a missing key, worth 0) and writes
 * the sum to `out` as Redis prints it: "%.17Lf" with trailing zeros and a
 * trailing dot removed, and "-0" shown as "0". Returns the length written,
 * LD_NOT_FLOAT when either text is not a float, LD_NAN_OR_INF when the sum
 * is not finite. `out` must hold LD_CHARS bytes. */
int ferrokv_ld_incr(const char *cur, size_t cur_len, const char *incr, size_t incr_len, char *out,
                    size_t out_cap) {
    long double value = 0, by;
    int l;

    if (cur != NULL && !parse(cur, cur_len, &value)) return LD_NOT_FLOAT;
    if (!parse(incr, incr_len, &by)) return LD_NOT_FLOAT;
    value += by;
    if (isnan(value) || isinf(value)) return LD_NAN_OR_INF;
    l = snprintf(out, out_cap, "%.17Lf", value);
    /* Unreachable with LD_CHARS bytes; Redis stores "" in that case. */
    if (l < 0 || (size_t)l + 1 > out_cap) return 0;
    if (strchr(out, '.') != NULL) {
        while (out[l - 1] == '0') l--;
        if (out[l - 1] == '.') l--;
    }
    if (l == 2 && out[0] == '-' && out[1] == '0') {
        out[0] = '0';
        l = 1;
    }
    return l;
}
