/*
 * subject: validation and matching of subjects and patterns. See subject.h.
 */
#include "msg/subject.h"

#include <string.h>

static bool s_check(const char *s, bool wildcards)
{
    size_t len = strlen(s);
    if (len == 0 || len > COHORT_SUBJECT_MAX)
        return false;
    const char *tok = s;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t n = (size_t)(p - tok);
            if (n == 0)
                return false;
            bool wild = n == 1 && (*tok == '*' || *tok == '>');
            if (wild && !wildcards)
                return false;
            if (n == 1 && *tok == '>' && *p != '\0')
                return false; /* '>' only as the last token */
            if (*p == '\0')
                return true;
            tok = p + 1;
            continue;
        }
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == 0x7f)
            return false;
        if ((c == '*' || c == '>') && !wildcards)
            return false;
    }
}

bool cohort_subject_valid(const char *s)
{
    return s_check(s, false);
}

bool cohort_pattern_valid(const char *p)
{
    if (!s_check(p, true))
        return false;
    /* '*' and '>' must be whole tokens, not "a*b". */
    for (const char *q = p; *q; q++)
        if ((*q == '*' || *q == '>') && ((q > p && q[-1] != '.') || (q[1] != '\0' && q[1] != '.')))
            return false;
    return true;
}

bool cohort_pattern_match(const char *pattern, const char *subject)
{
    const char *p = pattern, *s = subject;
    for (;;) {
        const char *pe = strchr(p, '.'), *se = strchr(s, '.');
        size_t pn = pe ? (size_t)(pe - p) : strlen(p);
        size_t sn = se ? (size_t)(se - s) : strlen(s);
        if (pn == 1 && *p == '>')
            return true; /* at least one subject token is left here */
        if (!(pn == 1 && *p == '*') && (pn != sn || memcmp(p, s, pn) != 0))
            return false;
        if (!pe || !se)
            return !pe && !se;
        p = pe + 1;
        s = se + 1;
    }
}
