/* Writing activation datasets (SPEC §10): `saec gen`.

   The rows are streamed from the source in batches of whole chunks, so memory stays bounded for
   any n_rows. The file is built under `path.tmp.<pid>` and renamed at the end, so a reader never
   sees a half-written dataset and a failure leaves nothing behind. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "data.h"
#include "h5_lock.h"
#include "h5_write.h"
#include "saec/saec.h"

/* Writes a float or int dataset `name` [dims] under loc. Lock held. */
static int write_array(hid_t loc, const char *name, int rank, const hsize_t *dims, hid_t file_type,
                       hid_t mem_type, const void *data) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t ds = space >= 0
                   ? H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                   : -1;
    herr_t rc = ds >= 0 ? H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    if (ds >= 0) H5Dclose(ds);
    if (space >= 0) H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

int saec_h5_write_string_attr(hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr >= 0 ? H5Awrite(attr, type, &value) : -1;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    return rc < 0 ? -1 : 0;
}

static int write_ground_truth(hid_t file, const saec_ground_truth *gt) {
    hid_t g = H5Gcreate2(file, "ground_truth", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    hsize_t fd[2] = {(hsize_t)gt->n_features, (hsize_t)gt->d};
    hsize_t f[1] = {(hsize_t)gt->n_features};
    hsize_t d[1] = {(hsize_t)gt->d};
    int rc = write_array(g, "directions", 2, fd, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, gt->directions);
    if (rc == 0)
        rc = write_array(g, "probabilities", 1, f, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                         gt->probabilities);
    if (rc == 0) rc = write_array(g, "offset", 1, d, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, gt->offset);
    if (rc == 0 && gt->parent)
        rc = write_array(g, "parent", 1, f, H5T_STD_I32LE, H5T_NATIVE_INT32, gt->parent);
    if (rc == 0 && gt->t_center)
        rc = write_array(g, "t_center", 1, f, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, gt->t_center);
    if (rc == 0) {
        hid_t space = H5Screate(H5S_SCALAR);
        hid_t attr = H5Acreate2(g, "noise", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
        if (attr < 0 || H5Awrite(attr, H5T_NATIVE_DOUBLE, &gt->noise) < 0) rc = -1;
        if (attr >= 0) H5Aclose(attr);
        H5Sclose(space);
    }
    H5Gclose(g);
    return rc;
}

int saec_h5_write_dataset(const char *path, saec_data *src, int64_t n_rows, const char *attrs_json,
                          int progress) {
    const int64_t d = src->info.d;
    if (n_rows <= 0)
        return saec_fail(SAEC_ERR_USAGE, "pass --tokens N with N > 0",
                         "cannot write '%s': %" PRId64 " rows requested", path, n_rows);
    if (d <= 0)
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: source of width %" PRId64 " for '%s'", d,
                         path);
    char tmp[SAEC_STR_MAX + 64];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof tmp)
        return saec_fail(SAEC_ERR_USAGE, "choose a shorter output path",
                         "cannot write '%.200s...': the path is too long", path);

    /* Probe the location with plain stdio first: HDF5's own failure says nothing about why. */
    FILE *probe = fopen(tmp, "wb");
    if (!probe)
        return saec_fail(SAEC_ERR_USAGE, "choose an existing, writable directory for --out",
                         "cannot write '%s': %s", path, strerror(errno));
    fclose(probe);

    /* Chunks of about 1 MiB of whole rows: large enough for fast sequential reads, small enough
       that a reader's shuffle blocks stay fine-grained. */
    int64_t chunk_rows = ((int64_t)1 << 20) / (d * (int64_t)sizeof(float));
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > n_rows) chunk_rows = n_rows;
    /* Batches of whole chunks, about 16 MiB, and at most a tenth of the file so progress moves
       in steps of about 10%. */
    int64_t batch_rows = chunk_rows * 16;
    if (batch_rows > n_rows / 10) batch_rows = (n_rows / 10) / chunk_rows * chunk_rows;
    if (batch_rows < chunk_rows) batch_rows = chunk_rows;
    if (batch_rows > n_rows) batch_rows = n_rows;
    float *batch = malloc((size_t)batch_rows * (size_t)d * sizeof(float)); /* [batch_rows, d] */
    const int has_t = src->has_timesteps;
    int32_t *tbatch = has_t ? malloc((size_t)batch_rows * sizeof(int32_t)) : NULL; /* [batch] */
    if (!batch || (has_t && !tbatch)) {
        free(batch);
        free(tbatch);
        remove(tmp);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing '%s'", path);
    }

    int rc = SAEC_OK;
    saec_ground_truth gt;
    memset(&gt, 0, sizeof gt);
    int have_gt = 0;
    if (src->has_ground_truth) {
        rc = saec_data_ground_truth(src, &gt);
        have_gt = rc == SAEC_OK;
    }

    hid_t file = -1, dset = -1, fspace = -1, tset = -1, tspace = -1;
    if (rc == SAEC_OK) {
        saec_h5_lock();
        file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        if (file >= 0) {
            hsize_t dims[2] = {(hsize_t)n_rows, (hsize_t)d};
            hsize_t cdims[2] = {(hsize_t)chunk_rows, (hsize_t)d};
            hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
            H5Pset_chunk(dcpl, 2, cdims);
            fspace = H5Screate_simple(2, dims, NULL);
            dset = H5Dcreate2(file, "activations", H5T_IEEE_F32LE, fspace, H5P_DEFAULT, dcpl,
                              H5P_DEFAULT);
            H5Pclose(dcpl);
            if (has_t) { /* timesteps [n_rows] int32, chunked like the rows */
                hsize_t tdims[1] = {(hsize_t)n_rows}, tcdims[1] = {(hsize_t)chunk_rows};
                hid_t tdcpl = H5Pcreate(H5P_DATASET_CREATE);
                H5Pset_chunk(tdcpl, 1, tcdims);
                tspace = H5Screate_simple(1, tdims, NULL);
                tset = H5Dcreate2(file, "timesteps", H5T_STD_I32LE, tspace, H5P_DEFAULT, tdcpl,
                                  H5P_DEFAULT);
                H5Pclose(tdcpl);
            }
        }
        if (file < 0 || dset < 0 || (has_t && tset < 0))
            rc = saec_fail(SAEC_ERR_OTHER, "check free disk space", "cannot create HDF5 file '%s'",
                           tmp);
        if (rc == SAEC_OK && attrs_json &&
            saec_h5_write_string_attr(file, "saec_provenance", attrs_json) < 0)
            rc = saec_fail(SAEC_ERR_OTHER, "check free disk space",
                           "cannot write the provenance attribute of '%s'", tmp);
        if (rc == SAEC_OK && have_gt && write_ground_truth(file, &gt) < 0)
            rc = saec_fail(SAEC_ERR_OTHER, "check free disk space",
                           "cannot write the ground truth of '%s'", tmp);
        saec_h5_unlock();
    }

    int64_t done = 0;
    int next_report = 1; /* tenths */
    while (rc == SAEC_OK && done < n_rows) {
        int64_t take = n_rows - done < batch_rows ? n_rows - done : batch_rows;
        rc = saec_data_next(src, take, batch, tbatch);
        if (rc != SAEC_OK) break;
        hsize_t start[2] = {(hsize_t)done, 0};
        hsize_t count[2] = {(hsize_t)take, (hsize_t)d};
        saec_h5_lock();
        hid_t mspace = H5Screate_simple(2, count, NULL);
        herr_t w = -1;
        if (mspace >= 0 &&
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0)
            w = H5Dwrite(dset, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, batch);
        if (mspace >= 0) H5Sclose(mspace);
        if (w >= 0 && has_t) {
            hid_t tmspace = H5Screate_simple(1, count, NULL);
            w = -1;
            if (tmspace >= 0 &&
                H5Sselect_hyperslab(tspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0)
                w = H5Dwrite(tset, H5T_NATIVE_INT32, tmspace, tspace, H5P_DEFAULT, tbatch);
            if (tmspace >= 0) H5Sclose(tmspace);
        }
        saec_h5_unlock();
        if (w < 0) {
            rc = saec_fail(SAEC_ERR_OTHER, "check free disk space",
                           "cannot write rows %" PRId64 "..%" PRId64 " of '%s'", done,
                           done + take - 1, tmp);
            break;
        }
        done += take;
        if (progress && done * 10 >= next_report * n_rows) {
            fprintf(stderr, "saec gen: %3d%%  %" PRId64 " / %" PRId64 " rows\n",
                    (int)(done * 100 / n_rows), done, n_rows);
            while (next_report <= 10 && done * 10 >= next_report * n_rows)
                next_report++;
        }
    }

    saec_h5_lock();
    if (fspace >= 0) H5Sclose(fspace);
    if (dset >= 0) H5Dclose(dset);
    if (tspace >= 0) H5Sclose(tspace);
    if (tset >= 0) H5Dclose(tset);
    /* Closing flushes: a failure here means the file is incomplete. */
    if (file >= 0 && H5Fclose(file) < 0 && rc == SAEC_OK)
        rc = saec_fail(SAEC_ERR_OTHER, "check free disk space", "cannot finish writing '%s'", tmp);
    saec_h5_unlock();
    free(batch);
    free(tbatch);
    if (have_gt) saec_ground_truth_free(&gt);

    if (rc == SAEC_OK && rename(tmp, path) != 0)
        rc = saec_fail(SAEC_ERR_USAGE, "choose a writable location for --out",
                       "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (rc != SAEC_OK) remove(tmp);
    return rc;
}
