#!/usr/bin/python3
"""Write N one-byte mutants of an h5ad's HDF5 metadata (issue #19: a corrupt file must never crash).

    make_metadata_mutants.py INPUT.h5ad OUTDIR [N=40] [SEED=19]

Metadata = every byte of the file outside the raw data of its datasets (contiguous storage and
every allocated chunk, from h5py's low-level API): superblock, object headers, B-trees, heaps.
Mutant i sets one such byte (chosen with a fixed seed) to a random different value and is written
as OUTDIR/mutant_NN.h5ad; OUTDIR/mutants.tsv lists offset, old and new byte."""
import os
import random
import sys

import h5py


def data_ranges(path):
    ranges = []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            dsid = obj.id
            layout = dsid.get_create_plist().get_layout()
            if layout == h5py.h5d.CONTIGUOUS:
                offset = dsid.get_offset()
                if offset is not None:
                    ranges.append((offset, offset + dsid.get_storage_size()))
            elif layout == h5py.h5d.CHUNKED:
                for i in range(dsid.get_num_chunks()):
                    info = dsid.get_chunk_info(i)
                    ranges.append((info.byte_offset, info.byte_offset + info.size))
        f.visititems(visit)
    return sorted(ranges)


def main():
    source, outdir = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 19
    data = bytearray(open(source, "rb").read())
    covered = bytearray(len(data))
    for begin, end in data_ranges(source):
        covered[begin:min(end, len(data))] = b"\x01" * (min(end, len(data)) - begin)
    metadata = [i for i in range(len(data)) if not covered[i]]
    rng = random.Random(seed)
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "mutants.tsv"), "w") as listing:
        listing.write("file\toffset\told\tnew\n")
        for k in range(n):
            offset = rng.choice(metadata)
            old = data[offset]
            new = rng.choice([b for b in range(256) if b != old])
            mutant = bytearray(data)
            mutant[offset] = new
            name = f"mutant_{k:02d}.h5ad"
            with open(os.path.join(outdir, name), "wb") as f:
                f.write(mutant)
            listing.write(f"{name}\t{offset}\t{old}\t{new}\n")


if __name__ == "__main__":
    main()
