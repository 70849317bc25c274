/* The global HDF5 lock (h5_lock.h): every HDF5 call in saec is made with it held. */
#include <pthread.h>

#include <hdf5.h>

#include "h5_lock.h"

static pthread_once_t h5_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t h5_mutex;
static _Thread_local int h5_silenced;

static void h5_mutex_init(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    /* Recursive so that helpers which lock can be called from code that already holds it. */
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&h5_mutex, &attr);
    pthread_mutexattr_destroy(&attr);
}

void saec_h5_lock(void) {
    pthread_once(&h5_once, h5_mutex_init);
    pthread_mutex_lock(&h5_mutex);
    if (!h5_silenced) {
        /* The automatic error printer is per thread in thread-safe builds. */
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        h5_silenced = 1;
    }
}

void saec_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }
