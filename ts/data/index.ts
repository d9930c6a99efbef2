/**
 * Data: readers for IDX, NPY/NPZ, CIFAR binary, NORB, SVHN MAT, raw uint8 arrays, image folders and tar/zip archives;
 * named datasets with checksums and downloads; CPU transforms; and streaming in bounded memory. See docs/data.md.
 */
export * from './stream.js';
export * from './random.js';
export * from './idx.js';
export * from './npy.js';
export * from './npz.js';
export * from './zip.js';
export * from './cifar.js';
export * from './tar.js';
export * from './images.js';
export * from './raw.js';
export * from './norb.js';
export * from './mat.js';
export * from './transforms.js';
export * from './verify.js';
export * from './datasets.js';
export * from './png.js';
