/* Acquisition time → ISO week and UTC hour (eo_acq_time.h). Calendar arithmetic on day numbers
   (days since 1970-01-01, proleptic Gregorian), so a UTC offset can move the date across a day,
   month or year boundary correctly. */
#include "eo_acq_time.h"

#include <ctype.h>
#include <stdint.h>

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* 1 = Monday .. 7 = Sunday (1970-01-01 was a Thursday). */
static int iso_weekday(int64_t days) {
    int64_t w = (days + 3) % 7; /* 0 = Monday */
    if (w < 0) w += 7;
    return (int)w + 1;
}

/* A year has 53 ISO weeks when it starts on a Thursday, or on a Wednesday in a leap year. */
static int iso_weeks_in_year(int y) {
    const int jan1 = iso_weekday(days_from_civil(y, 1, 1));
    return jan1 == 4 || (jan1 == 3 && is_leap(y)) ? 53 : 52;
}

int eo_iso_week(int year, int month, int day) {
    const int64_t days = days_from_civil(year, month, day);
    const int ordinal = (int)(days - days_from_civil(year, 1, 1)) + 1;
    const int week = (ordinal - iso_weekday(days) + 10) / 7;
    if (week < 1) return iso_weeks_in_year(year - 1);
    if (week > iso_weeks_in_year(year)) return 1;
    return week;
}

/* Reads exactly n digits at *p into *value. */
static int digits(const char **p, int n, int *value) {
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p)) return -1;
        v = 10 * v + (**p - '0');
    }
    *value = v;
    return 0;
}

int eo_parse_acquisition(const char *text, float *iso_week, float *utc_hour) {
    const char *p = text;
    int y, mo, d, h, mi, s = 0;
    double frac = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        return -1;
    if (*p != ' ' && *p != 'T') return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi)) return -1;
    if (*p == ':') {
        p++;
        if (digits(&p, 2, &s)) return -1;
        if (*p == '.') {
            p++;
            double scale = 0.1;
            if (!isdigit((unsigned char)*p)) return -1;
            for (; isdigit((unsigned char)*p); p++, scale /= 10)
                frac += (*p - '0') * scale;
        }
    }
    int offset_min = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        const int sign = *p++ == '-' ? -1 : 1;
        int oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    }
    if (*p != '\0') return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59)
        return -1;

    /* Local time minus its offset is UTC. */
    int64_t minutes = days_from_civil(y, mo, d) * 1440 + h * 60 + mi - offset_min;
    int64_t days = minutes / 1440, minute_of_day = minutes % 1440;
    if (minute_of_day < 0) {
        minute_of_day += 1440;
        days--;
    }
    int uy, um, ud;
    civil_from_days(days, &uy, &um, &ud);
    *iso_week = (float)eo_iso_week(uy, um, ud);
    *utc_hour = (float)((double)minute_of_day / 60.0 + (s + frac) / 3600.0);
    return 0;
}
