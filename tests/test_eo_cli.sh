#!/usr/bin/env bash
# `saec gen eo` and `saec inspect` on EO files: the file has the EO layout (checked with h5py),
# inspect summarises it, bad values exit 2 and leave no file, and SIGINT during the write leaves
# no file (exit 130).
source "$(dirname "$0")/lib.sh"
cd "$WORK"

"$SAEC" gen eo --out tiles.h5 --tokens 300 --eo-side 8 --seed 5 2>gen.txt \
  && pass "gen eo wrote tiles.h5" || { fail "gen eo failed"; cat gen.txt >&2; }
grep -q "100%" gen.txt && pass "gen eo prints progress" || fail "no progress on stderr"
ls tiles.h5.tmp.* >/dev/null 2>&1 && fail "gen eo left a temporary file" || pass "no temporary file"

"$PYTHON" - <<'PY' && pass "the file has the EO layout" || fail "the file's layout is wrong"
import h5py, numpy as np
with h5py.File("tiles.h5", "r") as f:
    assert f["images"].shape == (300, 7, 8, 8) and f["images"].dtype == np.float32
    assert f["metadata"].shape == (300, 4) and f["metadata"].dtype == np.float32
    assert f["labels"].shape == (300, 8) and f["labels"].dtype == np.uint8
    lab = f["labels"][...]
    assert set(np.unique(lab)) <= {0, 1} and (lab.sum(1) >= 1).all()
    names = f["labels"].attrs["class_names"]
    names = names.decode() if isinstance(names, bytes) else names
    assert names.split("\n") == ["water", "forest", "cropland", "grassland", "urban", "bare", "snow", "wetland"]
    split = f["split"][...]
    assert split.dtype == np.uint8 and set(np.unique(split)) == {0, 1, 2}
    assert 0.5 < (split == 0).mean() < 0.7
    img = f["images"][...][split == 0]
    mean = img.transpose(1, 0, 2, 3).reshape(7, -1).mean(1)
    std = img.transpose(1, 0, 2, 3).reshape(7, -1).std(1)
    assert np.allclose(f["images"].attrs["band_mean"], mean, rtol=1e-5)
    assert np.allclose(f["images"].attrs["band_std"], std, rtol=1e-4)
    meta = f["metadata"][...]
    assert ((meta[:, 0] >= 1) & (meta[:, 0] <= 52)).all() and ((meta[:, 2] >= -60) & (meta[:, 2] <= 72)).all()
PY

"$SAEC" gen eo --out again.h5 --tokens 300 --eo-side 8 --seed 5 2>/dev/null
cmp -s <("$PYTHON" -c "import h5py; f=h5py.File('tiles.h5'); print(f['images'][...].tobytes().hex()[:100000])") \
       <("$PYTHON" -c "import h5py; f=h5py.File('again.h5'); print(f['images'][...].tobytes().hex()[:100000])") \
  && pass "same seed, same tiles" || fail "gen eo is not deterministic"

"$SAEC" inspect tiles.h5 >inspect.txt 2>&1 || fail "inspect failed"
grep -q "EO file" inspect.txt && pass "inspect says EO file" || fail "inspect does not say EO file"
grep -Eq "300 x \[7 bands, 8 x 8\] float32" inspect.txt && pass "inspect prints the shape" || fail "no shape in inspect"
grep -q "wetland" inspect.txt && pass "inspect prints the classes" || fail "no classes in inspect"
grep -Eq "split +train [0-9]+, val [0-9]+, test [0-9]+" inspect.txt && pass "inspect prints split counts" || fail "no split counts"
grep -q "band_mean" inspect.txt && pass "inspect prints band stats" || fail "no band stats"
sed 's/^/    /' inspect.txt | head -8

# bad values: exit 2, nothing written
"$SAEC" gen eo --out side1.h5 --eo-side 1 --tokens 10 2>err.txt; rc=$?
[ $rc -eq 2 ] && grep -q "eo_side" err.txt && pass "--eo-side 1: exit 2 naming eo_side" || fail "--eo-side 1: exit $rc: $(cat err.txt)"
[ ! -e side1.h5 ] && pass "--eo-side 1: no file" || fail "--eo-side 1 wrote a file"
"$SAEC" gen eo --out nodir/x.h5 --tokens 10 2>err.txt; rc=$?
[ $rc -eq 2 ] && grep -q "nodir/x.h5" err.txt && pass "unwritable --out: exit 2" || fail "unwritable --out: exit $rc"

# a bad EO file fails inspect with exit 3 naming the dataset
"$PYTHON" -c "
import h5py, numpy as np
with h5py.File('bad.h5', 'w') as f:
    f['images'] = np.zeros((4, 3, 2, 2), np.float32); f['metadata'] = np.zeros((4, 3), np.float32)"
"$SAEC" inspect bad.h5 >/dev/null 2>err.txt; rc=$?
[ $rc -eq 3 ] && grep -q "metadata" err.txt && pass "bad EO file: exit 3 naming metadata" || fail "bad EO file: exit $rc: $(cat err.txt)"

# SIGINT while writing: no file, no temporary, exit 130
"$SAEC" gen eo --out big.h5 --tokens 50000 --eo-side 40 2>int.txt &
pid=$!
for _ in $(seq 100); do ls big.h5.tmp.* >/dev/null 2>&1 && break; sleep 0.05; done
kill -INT $pid
for _ in $(seq 200); do kill -0 $pid 2>/dev/null || break; sleep 0.05; done
if kill -0 $pid 2>/dev/null; then kill -9 $pid; fail "gen eo did not stop on SIGINT"; fi
wait $pid; rc=$?
[ $rc -eq 130 ] && pass "SIGINT: exit 130" || fail "SIGINT: exit $rc: $(cat int.txt)"
[ ! -e big.h5 ] && ! ls big.h5.tmp.* >/dev/null 2>&1 && pass "SIGINT: no file left" || fail "SIGINT left $(ls big.h5*)"

finish
