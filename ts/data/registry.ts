/**
 * The named datasets of the paper (ALGORITHM.md §1.1): where their files live under a data root, their official
 * download URLs and checksums, and how each split maps onto the reference implementation's splits.
 *
 * Checksum provenance (also in docs/data.md):
 * - "computed here": sha256 of the files on this project's machines (`/usr/share/datasets/fashion-mnist` from Debian's
 *   `dataset-fashion-mnist`, `../shared/data` per its PROVENANCE.md).
 * - md5 values are the publishers' (as used by torchvision and the reference code).
 * - sha256 values of files not available here come from widely used third-party registries (TensorFlow Datasets and
 *   others) and are not verified on this machine; a file is accepted when ANY listed checksum matches.
 */
import { HVAEError } from '../errors.js';
import { CIFAR10_CLASSES, openCifarArchive, openCifarBatches } from './cifar.js';
import { openIdx } from './idx.js';
import { openImageFolder, openImageTar, openImageZip } from './images.js';
import { openSvhnMat } from './mat.js';
import { openSmallNorb, SMALLNORB_CLASSES } from './norb.js';
import { Dataset, ImageShape } from './stream.js';
import { invertDataset, resizeDataset } from './transforms.js';

/** Names of the built-in datasets. */
export type DatasetName =
  | 'FashionMNIST' | 'MNIST' | 'notMNIST' | 'KMNIST'
  | 'Omniglot28x28' | 'Omniglot28x28Inverted' | 'SmallNORB28x28' | 'SmallNORB28x28Inverted'
  | 'CIFAR10' | 'SVHN';

/** All built-in dataset names. */
export const DATASET_NAMES: readonly DatasetName[] = [
  'FashionMNIST', 'MNIST', 'notMNIST', 'KMNIST', 'Omniglot28x28', 'Omniglot28x28Inverted',
  'SmallNORB28x28', 'SmallNORB28x28Inverted', 'CIFAR10', 'SVHN',
];

/** Splits. `'extra'` exists for SVHN only (the reference's SVHN "validation"/"test" set, §1.1). */
export type Split = 'train' | 'test' | 'extra';

/** One file of a dataset source, with its checksums. */
export interface FileSpec {
  /** Path relative to the dataset's folder under a data root (`/`-separated). */
  file: string;
  /** `'file'` (default) or `'dir'` (an extracted folder; cannot be checksummed or downloaded). */
  kind?: 'file' | 'dir';
  /** Official download URLs, tried in order. Empty: not downloadable from an official source. */
  urls: readonly string[];
  /** Size in bytes, when known. */
  size?: number;
  /** Accepted sha256 digests of the file. */
  sha256?: readonly string[];
  /** Accepted md5 digests of the file (publishers' checksums). */
  md5?: readonly string[];
  /** Accepted sha256 of the gunzipped contents (gzip files), independent of how the file was compressed. */
  contentSha256?: readonly string[];
  /** Accepted md5 of the gunzipped contents. */
  contentMd5?: readonly string[];
}

/** Options passed to a source's opener. */
export interface SourceOpenOptions {
  /** Skip undecodable images in image archives (default: per source). */
  skipUnreadable?: boolean;
  /** Decode concurrency for image archives. */
  concurrency?: number;
  /** Called for every skipped image. */
  onSkip?: (file: string, error: HVAEError) => void;
  /** Dataset name. */
  name: string;
}

/** One way a split can be stored on disk (e.g. the gzip IDX files, or the same files uncompressed). */
export interface SourceSpec {
  /** Short identifier, e.g. `'idx-gz'`. */
  id: string;
  /** What these files are. */
  description: string;
  /** The files (all must be present in the same folder). */
  files: readonly FileSpec[];
  /** Expected number of images, when fixed. */
  count?: number;
  /** Opens the files (absolute paths, in `files` order). */
  open: (paths: string[], options: SourceOpenOptions) => Promise<Dataset>;
}

/** What a split is and where it can come from. */
export interface SplitSpec {
  /** Candidate sources in order of preference. */
  sources: readonly SourceSpec[];
  /** What this split is in the reference implementation's terms (ALGORITHM.md §1.1). */
  reference: string;
}

/** A built-in dataset. */
export interface DatasetSpec {
  /** Canonical name. */
  name: DatasetName;
  /** Image shape `[c, h, w]` after the dataset's fixed transforms. */
  shape: ImageShape;
  /** Class names indexed by label. */
  classNames?: readonly string[];
  /** Folder names under a data root, in lookup order; `fetchDataset` writes into the first. `'.'` is the root itself. */
  dirs: readonly string[];
  /** Project homepage. */
  homepage: string;
  /** The splits. */
  splits: Partial<Record<Split, SplitSpec>>;
  /** Extra ways to get the data, shown in the not-found error. */
  howToGet?: readonly string[];
  /** Fixed transform applied after opening (e.g. inversion, resizing). */
  post?: (d: Dataset, name: string) => Dataset;
  /** Notes for the documentation. */
  notes?: string;
}

const FASHION_URLS = ['http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/', 'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/'];
const MNIST_URLS = ['https://ossci-datasets.s3.amazonaws.com/mnist/', 'https://storage.googleapis.com/cvdf-datasets/mnist/', 'http://yann.lecun.com/exdb/mnist/'];
const KMNIST_URLS = ['http://codh.rois.ac.jp/kmnist/dataset/kmnist/'];

interface IdxChecksums { sha256?: string[]; md5?: string[]; contentSha256?: string[]; size?: number }

/** The IDX family (MNIST, FashionMNIST, KMNIST): gzip files, or the same files uncompressed. */
function idxSplit(prefix: 'train' | 't10k', count: number, mirrors: string[], sums: Record<string, IdxChecksums>, reference: string, classNames?: readonly string[], extra: SourceSpec[] = []): SplitSpec {
  const img = `${prefix}-images-idx3-ubyte`;
  const lab = `${prefix}-labels-idx1-ubyte`;
  const gz = (f: string): FileSpec => ({ file: `${f}.gz`, urls: mirrors.map((m) => m + `${f}.gz`), ...sums[`${f}.gz`] });
  const raw = (f: string): FileSpec => ({ file: f, urls: [], sha256: sums[`${f}.gz`]?.contentSha256 });
  const open = (paths: string[], o: SourceOpenOptions): Promise<Dataset> => openIdx(paths[0], { labels: paths[1], name: o.name, classNames });
  return {
    reference,
    sources: [
      { id: 'idx-gz', description: 'the standard gzip IDX files', files: [gz(img), gz(lab)], count, open },
      { id: 'idx', description: 'the IDX files, uncompressed (streamed from disk)', files: [raw(img), raw(lab)], count, open },
      ...extra,
    ],
  };
}

const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const KMNIST_CLASSES = ['o', 'ki', 'su', 'tsu', 'na', 'ha', 'ma', 'ya', 're', 'wo'];
const LETTERS = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'];

const FASHION_SUMS: Record<string, IdxChecksums> = {
  'train-images-idx3-ubyte.gz': {
    sha256: ['b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7', '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84'],
    md5: ['8d4fb7e6c68d591d4c3dfef9ec88bf0d'],
    contentSha256: ['c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888'],
  },
  'train-labels-idx1-ubyte.gz': {
    sha256: ['0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056', 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845'],
    md5: ['25c81989df183df01b3e8a0aad5dffbe'],
    contentSha256: ['bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9'],
  },
  't10k-images-idx3-ubyte.gz': {
    sha256: ['cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa', '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073'],
    md5: ['bef4ecab320f06d8554ea6380940ec79'],
    contentSha256: ['5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b'],
  },
  't10k-labels-idx1-ubyte.gz': {
    sha256: ['8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05', '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5'],
    md5: ['bb300cfdad3c16e7a12a480ee83cd310'],
    contentSha256: ['0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34'],
  },
};

const MNIST_SUMS: Record<string, IdxChecksums> = {
  'train-images-idx3-ubyte.gz': { sha256: ['440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'], md5: ['f68b3c2dcbeaaa9fbdd348bbdeb94873'], size: 9912422 },
  'train-labels-idx1-ubyte.gz': { sha256: ['3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c'], md5: ['d53e105ee54ea40749a09fcbcd1e9432'], size: 28881 },
  't10k-images-idx3-ubyte.gz': {
    sha256: ['8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6'], md5: ['9fb629c4189551a2d022fa330f9573f3'],
    contentSha256: ['0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7'], size: 1648877,
  },
  't10k-labels-idx1-ubyte.gz': {
    sha256: ['f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6'], md5: ['ec29112dd5afa0611ce80d1b7f02629c'],
    contentSha256: ['ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2'], size: 4542,
  },
};

const KMNIST_SUMS: Record<string, IdxChecksums> = {
  'train-images-idx3-ubyte.gz': { sha256: ['51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4'], md5: ['bdb82020997e1d708af4cf47b453dcf7'] },
  'train-labels-idx1-ubyte.gz': { sha256: ['e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17'], md5: ['e144d726b3acfaa3e44228e80efcd344'] },
  't10k-images-idx3-ubyte.gz': { sha256: ['edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5'], md5: ['5c965bf0a639b31b8f53240b1b52f4d7'] },
  't10k-labels-idx1-ubyte.gz': { sha256: ['20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c'], md5: ['7320c461ea6c1c855c0b718fb2a4b134'] },
};

const NOTMNIST_SAMPLE_SUMS: Record<string, IdxChecksums> = {
  't10k-images-idx3-ubyte.gz': { sha256: ['70ae9e06201f2827e5b0a3781a3169d735dd2efc69996b9eeaee7f10ed4044d7'], contentSha256: ['8e7f38ae95cc8f48e0986175ffc9137e5007ebcf3d8fdf6656c904eb9dab198b'] },
  't10k-labels-idx1-ubyte.gz': { sha256: ['1fa03836e01c862542f8eb83463bb951bebec6fcb3efa28dad748c6b38a9021b'], contentSha256: ['5f8e6012f2ce730700d8d05fca098bc47f71d25b890e4bec7ac5ebfd614a4001'] },
};

function notMnistTar(file: 'notMNIST_small.tar.gz' | 'notMNIST_large.tar.gz'): SourceSpec {
  return {
    id: 'png-tar',
    description: `${file}: folders A..J of 28x28 PNGs (a few files are unreadable and skipped)`,
    files: [{ file, urls: [`http://yaroslavvb.com/upload/notMNIST/${file}`] }],
    open: (p, o) => openImageTar(p[0], { label: 'folder', classNames: LETTERS, channels: 1, skipUnreadable: o.skipUnreadable ?? true, onSkip: o.onSkip, concurrency: o.concurrency, name: o.name }),
  };
}

const CIFAR_BIN: FileSpec = {
  file: 'cifar-10-binary.tar.gz', urls: ['https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'], size: 170052171,
  md5: ['c32a1d4ab5d03f1284b67883e8d87530'], sha256: ['c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd'],
};

function cifarSplit(split: 'train' | 'test'): SplitSpec {
  const bins = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  const sources: SourceSpec[] = [
    { id: 'binary-tar-gz', description: 'the official binary archive cifar-10-binary.tar.gz (read without extracting)', files: [CIFAR_BIN], count: split === 'train' ? 50000 : 10000, open: (p, o) => openCifarArchive(p[0], { split, name: o.name }) },
    { id: 'binary', description: 'the extracted binary batches', files: bins.map((b) => ({ file: `cifar-10-batches-bin/${b}`, urls: [] })), count: split === 'train' ? 50000 : 10000, open: (p, o) => openCifarBatches(p, { name: o.name }) },
  ];
  if (split === 'test') {
    sources.push({
      id: 'png-tar',
      description: 'the test set as 10,000 PNGs data/cifar/test/<index>_<class>.png (../shared/data/cifar10)',
      files: [{ file: 'cifar10-test-png.tar.gz', urls: [], sha256: ['57077492575df8b69a672c24318fe73615927bd37f3878a0c3acc1ca5580a004'], size: 27986417 }],
      count: 10000,
      open: (p, o) => openImageTar(p[0], {
        label: (rel) => /_([a-z]+)\.png$/i.exec(rel)?.[1], classNames: CIFAR10_CLASSES, channels: 3,
        skipUnreadable: o.skipUnreadable, onSkip: o.onSkip, concurrency: o.concurrency, name: o.name,
      }),
    });
  }
  return { reference: split === 'train' ? 'train (50,000)' : 'the reference\'s "validation" and "test" (both the official test batch, 10,000)', sources };
}

function svhnSplit(split: Split, md5: string, size: number | undefined, count: number, reference: string): SplitSpec {
  const file = `${split}_32x32.mat`;
  return {
    reference,
    sources: [{ id: 'mat', description: `${file} (MATLAB v5)`, files: [{ file, urls: [`http://ufldl.stanford.edu/housenumbers/${file}`], md5: [md5], size }], count, open: (p, o) => openSvhnMat(p[0], { name: o.name }) }],
  };
}

function omniglotSplit(which: 'images_background' | 'images_evaluation', md5: string, count: number, reference: string): SplitSpec {
  const opts = (o: SourceOpenOptions) => ({ label: 'folder' as const, channels: 1 as const, size: [28, 28] as [number, number], kernel: 'nearest' as const, skipUnreadable: o.skipUnreadable, onSkip: o.onSkip, concurrency: o.concurrency, name: o.name });
  return {
    reference,
    sources: [
      { id: 'zip', description: `${which}.zip (105x105 PNGs, resized to 28x28 with nearest-neighbour)`, files: [{ file: `${which}.zip`, urls: [`https://raw.githubusercontent.com/brendenlake/omniglot/master/python/${which}.zip`], md5: [md5] }], count, open: (p, o) => openImageZip(p[0], opts(o)) },
      { id: 'folder', description: `${which}/ extracted`, files: [{ file: which, kind: 'dir', urls: [] }], count, open: (p, o) => openImageFolder(p[0], opts(o)) },
    ],
  };
}

function norbSplit(kind: 'training' | 'testing', sums: { dat: [string, string]; cat: [string, string] }, reference: string): SplitSpec {
  const stem = kind === 'training' ? 'smallnorb-5x46789x9x18x6x2x96x96-training' : 'smallnorb-5x01235x9x18x6x2x96x96-testing';
  const base = 'https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/';
  const open = (p: string[], o: SourceOpenOptions): Promise<Dataset> => openSmallNorb(p[0], { categories: p[1], name: o.name });
  return {
    reference,
    sources: [
      { id: 'mat-gz', description: 'the official gzip NORB files', count: 48600, open, files: [
        { file: `${stem}-dat.mat.gz`, urls: [`${base}${stem}-dat.mat.gz`], md5: [sums.dat[0]], contentMd5: [sums.dat[1]] },
        { file: `${stem}-cat.mat.gz`, urls: [`${base}${stem}-cat.mat.gz`], md5: [sums.cat[0]], contentMd5: [sums.cat[1]] },
      ] },
      { id: 'mat', description: 'the NORB files, uncompressed (streamed from disk)', count: 48600, open, files: [
        { file: `${stem}-dat.mat`, urls: [], md5: [sums.dat[1]] },
        { file: `${stem}-cat.mat`, urls: [], md5: [sums.cat[1]] },
      ] },
    ],
  };
}

const OMNIGLOT: Omit<DatasetSpec, 'name'> = {
  shape: [1, 28, 28],
  dirs: ['omniglot', 'omniglot-py', '.'],
  homepage: 'https://github.com/brendenlake/omniglot',
  splits: {
    train: omniglotSplit('images_background', '68d2efa1b9178cc56df9314c21c6e718', 19280, 'the reference\'s "train" (background set, 19,280 images of 964 characters)'),
    test: omniglotSplit('images_evaluation', '6b91aef0f799c5bb55b94e3f2daec811', 13180, 'the reference\'s "validation" (evaluation set, 13,180 images of 659 characters)'),
  },
  notes: 'Labels are the character folders "<alphabet>/<character>". Images are black strokes on white; the Inverted variant flips them to white on black like MNIST.',
};

const NORB: Omit<DatasetSpec, 'name'> = {
  shape: [1, 28, 28],
  classNames: SMALLNORB_CLASSES,
  dirs: ['smallnorb', '.'],
  homepage: 'https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/',
  splits: {
    train: norbSplit('training', { dat: ['66054832f9accfe74a0f4c36a75bc0a2', '8138a0902307b32dfa0025a36dfa45ec'], cat: ['23c8b86101fbf0904a000b43d3ed2fd9', 'fd5120d3f770ad57ebe620eb61a0b633'] }, 'the reference\'s "train" (training file: 24,300 stereo pairs = 48,600 images)'),
    test: norbSplit('testing', { dat: ['e4ad715691ed5a3a5f138751a4ceb071', 'e9920b7f7b2869a8f1a12e945b2c166c'], cat: ['5aa791cd7e6016cf957ce9bdb93b8603', 'fd5120d3f770ad57ebe620eb61a0b633'] }, 'the reference\'s "validation" (testing file, 48,600 images)'),
  },
  notes: 'Image i is camera i % 2 of stereo pair ⌊i/2⌋ with that pair\'s category. 96x96 images are resized to 28x28 with sharp\'s bilinear kernel on every read.',
};

const norbPost = (d: Dataset, name: string): Dataset => resizeDataset(d, [28, 28], { kernel: 'linear', name });

/** The built-in datasets, by canonical name. */
export const DATASETS: Readonly<Record<DatasetName, DatasetSpec>> = {
  FashionMNIST: {
    name: 'FashionMNIST', shape: [1, 28, 28], classNames: FASHION_CLASSES,
    dirs: ['fashion-mnist', 'FashionMNIST/raw', '.'],
    homepage: 'https://github.com/zalandoresearch/fashion-mnist',
    splits: {
      train: idxSplit('train', 60000, FASHION_URLS, FASHION_SUMS, 'torchvision train (60,000)', FASHION_CLASSES),
      test: idxSplit('t10k', 10000, FASHION_URLS, FASHION_SUMS, 'torchvision test (10,000) = the reference\'s "validation" split', FASHION_CLASSES),
    },
    howToGet: ['on Debian/Ubuntu: apt install dataset-fashion-mnist (installs /usr/share/datasets/fashion-mnist)'],
  },
  MNIST: {
    name: 'MNIST', shape: [1, 28, 28], classNames: DIGITS,
    dirs: ['mnist', 'MNIST/raw', '.'],
    homepage: 'http://yann.lecun.com/exdb/mnist/',
    splits: {
      train: idxSplit('train', 60000, MNIST_URLS, MNIST_SUMS, 'torchvision train (60,000)', DIGITS),
      test: idxSplit('t10k', 10000, MNIST_URLS, MNIST_SUMS, 'torchvision test (10,000) = the reference\'s "validation" split', DIGITS),
    },
  },
  KMNIST: {
    name: 'KMNIST', shape: [1, 28, 28], classNames: KMNIST_CLASSES,
    dirs: ['kmnist', 'KMNIST/raw', '.'],
    homepage: 'https://github.com/rois-codh/kmnist',
    splits: {
      train: idxSplit('train', 60000, KMNIST_URLS, KMNIST_SUMS, 'torchvision train (60,000)', KMNIST_CLASSES),
      test: idxSplit('t10k', 10000, KMNIST_URLS, KMNIST_SUMS, 'torchvision test (10,000) = the reference\'s "validation" split', KMNIST_CLASSES),
    },
  },
  notMNIST: {
    name: 'notMNIST', shape: [1, 28, 28], classNames: LETTERS,
    dirs: ['notmnist', 'notMNIST', '.'],
    homepage: 'http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html',
    splits: {
      train: { reference: 'the reference\'s "train" (notMNIST_large, ~529k images)', sources: [notMnistTar('notMNIST_large.tar.gz')] },
      test: {
        reference: 'the reference\'s "validation" (notMNIST_small, 18,724 readable images); falls back to the 10,000-image IDX sample of ../shared/data/notmnist',
        sources: [
          notMnistTar('notMNIST_small.tar.gz'),
          ...idxSplit('t10k', 10000, ['https://github.com/davidflanagan/notMNIST-to-MNIST/raw/master/'], NOTMNIST_SAMPLE_SUMS, '', LETTERS).sources.map((s) => ({ ...s, id: `sample-${s.id}`, description: `a 10,000-image sample of notMNIST_small in IDX format (${s.description})` })),
        ],
      },
    },
    notes: 'Labels 0..9 are the letters A..J. The reference additionally permutes notMNIST once with numpy\'s default_rng(19690720); this library keeps file order (shuffle with batches() instead).',
  },
  Omniglot28x28: { name: 'Omniglot28x28', ...OMNIGLOT },
  Omniglot28x28Inverted: { name: 'Omniglot28x28Inverted', ...OMNIGLOT, post: (d, name) => invertDataset(d, name) },
  SmallNORB28x28: { name: 'SmallNORB28x28', ...NORB, post: norbPost },
  SmallNORB28x28Inverted: { name: 'SmallNORB28x28Inverted', ...NORB, post: (d, name) => invertDataset(norbPost(d, name), name) },
  CIFAR10: {
    name: 'CIFAR10', shape: [3, 32, 32], classNames: CIFAR10_CLASSES,
    dirs: ['cifar10', 'cifar-10', '.'],
    homepage: 'https://www.cs.toronto.edu/~kriz/cifar.html',
    splits: { train: cifarSplit('train'), test: cifarSplit('test') },
  },
  SVHN: {
    name: 'SVHN', shape: [3, 32, 32], classNames: DIGITS,
    dirs: ['svhn', 'SVHN', '.'],
    homepage: 'http://ufldl.stanford.edu/housenumbers/',
    splits: {
      train: svhnSplit('train', 'e26dedcc434d2e4c54c9b2d4a06d8373', 182040794, 73257, 'train (73,257)'),
      test: svhnSplit('test', 'eb5a983be6a315427106f1b164d9cef3', 64275384, 26032, 'test (26,032); note the reference evaluates on "extra" under the name "SVHN test"'),
      extra: svhnSplit('extra', 'a93ce644f1a588dc4d68dda5feec44a7', undefined, 531131, 'extra (531,131) = the reference\'s "validation" split, reported as "SVHN test" by its evaluation'),
    },
    notes: 'Label 10 in the MAT files (digit 0) becomes label 0.',
  },
};

/** Finds a dataset by name (case-insensitive; `-`, `_` and spaces ignored). Throws `ERR_HVAE_OPTION` listing the names. */
export function datasetSpec(name: string): DatasetSpec {
  const key = String(name).toLowerCase().replace(/[-_\s]/g, '');
  const found = DATASET_NAMES.find((n) => n.toLowerCase() === key);
  if (!found) throw new HVAEError('ERR_HVAE_OPTION', `unknown dataset '${name}'; known datasets: ${DATASET_NAMES.join(', ')}`);
  return DATASETS[found];
}

/**
 * A dataset's split by name. Own names only, so 'constructor' or 'toString' do not find Object.prototype's members.
 * Throws `ERR_HVAE_OPTION` listing the splits the dataset has.
 */
export function splitSpec(spec: DatasetSpec, split: unknown): SplitSpec {
  const s = typeof split === 'string' && Object.hasOwn(spec.splits, split) ? spec.splits[split as Split] : undefined;
  if (!s) throw new HVAEError('ERR_HVAE_OPTION', `${spec.name} has no '${String(split)}' split; it has: ${Object.keys(spec.splits).join(', ')}`);
  return s;
}
