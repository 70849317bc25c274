/* An acquisition date and time as the EO metadata wants it: ISO week and UTC decimal hour. */
#ifndef SAEC_EO_ACQ_TIME_H
#define SAEC_EO_ACQ_TIME_H

/* Parses "YYYY-MM-DD hh:mm:ss" (BigEarthNet's acquisition_date) or ISO 8601
   "YYYY-MM-DDThh:mm[:ss[.fff]]" with an optional "Z" or "±hh:mm" offset (none = UTC), and gives
   the ISO week (1 .. 53) and the hour (0 ≤ hour < 24, UTC, minutes and seconds as fractions) of
   that moment in UTC. Returns 0, or -1 for text that is not such a date or an impossible date
   (month 13, 30 February, hour 24, ...). */
int eo_parse_acquisition(const char *text, float *iso_week, float *utc_hour);

/* The ISO 8601 week (1 .. 53) of a valid Gregorian date. */
int eo_iso_week(int year, int month, int day);

#endif
