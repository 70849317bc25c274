/* Shared HDF5 plumbing for data_hdf5.c, h5_write.c and inspect.c. The lock is in h5_lock.c; the
   two helpers below are in data_hdf5.c, beside the dataset description they share.

   HDF5 is not reliably thread-safe (Debian builds vary), and a training source and an eval source
   may be open at the same time, each with its loader thread: every HDF5 call in saec goes
   through one global lock. The lock is recursive, so a helper that locks may be called from code
   that already holds it. Taking the lock also silences HDF5's own error printing for the calling
   thread (the error stack is per thread in thread-safe builds); saec reports errors itself. */
#ifndef SAEC_H5_LOCK_H
#define SAEC_H5_LOCK_H

#include <stddef.h>

#include <hdf5.h>

void saec_h5_lock(void);
void saec_h5_unlock(void);

/* Helpers below must be called with the lock held. */

/* Reads a scalar (or one-element) string attribute, fixed or variable length, into buf.
   Returns 1 when read, 0 when absent or not a string. */
int saec_h5_read_string_attr(hid_t obj, const char *name, char *buf, size_t cap);

/* Names an HDF5 datatype the way numpy would ("float32", "float16", "int32", "uint16",
   "float32 (big-endian)", "string", "compound", ...). When `obj` is a dataset (or other object,
   else pass H5I_INVALID_HID) whose type is a 16-bit integer and which carries the attribute
   dtype = "bfloat16", the name is "bfloat16". */
void saec_h5_type_name(hid_t type, hid_t obj, char *buf, size_t cap);

#endif
