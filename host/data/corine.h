/* CORINE Land Cover Level-3 names (the 43 classes of BigEarthNet's JSONs) and the 19-class
   BigEarthNet nomenclature they map to (Sumbul et al. 2021, BigEarthNet-MM). */
#ifndef SAEC_CORINE_H
#define SAEC_CORINE_H

enum { BEN19_CLASSES = 19 };
enum { CORINE_DROPPED = -1, CORINE_UNKNOWN = -2 };

/* The 19-class index of a label name: a CORINE Level-3 name, or already one of the 19 names.
   CORINE_DROPPED for the 11 Level-3 classes the 19-class nomenclature leaves out (roads, ports,
   airports, bare rock, ...), CORINE_UNKNOWN for any other text. Exact, case-sensitive match. */
int corine_to_ben19(const char *name);

/* The name of 19-class index c, at most 63 characters (the EO layout's name limit): class 6's
   full name is shortened, see corine.c. */
const char *ben19_name(int c);

#endif
