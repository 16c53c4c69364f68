#!/usr/bin/python3
"""Copy an h5ad whose X/data is chunked, recording an absurd stored size (0xFFFFFFF0 bytes) for
every chunk of X/data in the chunk index (issue #19: a 5.8 MB file made celltyper allocate 8.5 GB).

    make_chunk_size_mutant.py INPUT.h5ad OUTPUT.h5ad

The v1 B-tree key of a 1-D dataset's chunk is: u32 stored size, u32 filter mask, u64 offset of the
chunk (in values), u64 0. Prints how many keys were changed (at least 1, else exit 1)."""
import struct
import sys

import h5py


def main():
    source, target = sys.argv[1], sys.argv[2]
    data = bytearray(open(source, "rb").read())
    with h5py.File(source, "r") as f:
        dsid = f["X/data"].id
        infos = [dsid.get_chunk_info(i) for i in range(dsid.get_num_chunks())]
    changed = 0
    for info in infos:
        key = struct.pack("<IIQQ", info.size, info.filter_mask, info.chunk_offset[0], 0)
        at = data.find(key)
        while at >= 0:
            data[at:at + 4] = struct.pack("<I", 0xFFFFFFF0)
            changed += 1
            at = data.find(key, at + 1)
    with open(target, "wb") as f:
        f.write(data)
    print(changed)
    sys.exit(0 if changed else 1)


if __name__ == "__main__":
    main()
