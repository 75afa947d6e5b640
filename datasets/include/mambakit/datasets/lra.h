// Long Range Arena (Tay et al. 2021): readers for the files as the LRA
// release ships them, generators for ListOps and Pathfinder (so both run end
// to end without downloads) and readers for the offline stand-ins (Image on
// Fashion-MNIST IDX, Text/Retrieval on man pages, tools/make-manpage-lra.sh).
//
// Every reader returns a Dataset of examples whose tokens fit a byte (all
// LRA vocabularies have <= 256 symbols), unpadded and truncated to max_len;
// the task pads. A malformed row is an mk::Error "<file>:<row>: <why>".
//
// Task      reader                 file(s)                               L      vocab classes
// ListOps   read_listops           basic_{train,val,test}.tsv            2048   15    10
// Text      read_text_tsv          <label>\t<text> rows                  4096   256   any
//             stand-in: data/lra_man/text.{train,eval,test}.tsv (man sections 2/3/7)
//           read_imdb_dir          aclImdb/{train,test}/{pos,neg}/*.txt
// Retrieval read_retrieval         new_aan_pairs.{train,eval,test}.tsv   4000x2 256   2
//             stand-in: data/lra_man/pairs.{train,eval,test}.tsv (SEE ALSO links)
// Image     read_cifar10           data_batch_{1..5}.bin, test_batch.bin 1024   256   10
//           read_idx               *-images-idx3-ubyte(.gz) + labels     784    256   10
// Pathfinder read_pathfinder       <root>/metadata/*.npy + <root>/imgs/  1024   256   2
// Path-X    read_pathfinder        same layout, 128x128                  16384  256   2
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mk::data::lra {

// One example: a token sequence, and for the two-tower Retrieval task the
// second document; the class label.
struct Example {
  std::vector<uint8_t> tokens;   // (L1) first (or only) sequence, unpadded
  std::vector<uint8_t> tokens2;  // (L2) second document (Retrieval only)
  int32_t label = 0;
};

struct Dataset {
  std::string name;     // "listops", "text", "retrieval", "image", "pathfinder"
  std::string source;   // file or directory read
  std::vector<Example> examples;
  int vocab_size = 256;  // token ids are < vocab_size; vocab_size is free for padding
  int num_classes = 2;
  int max_len = 0;       // the L the task pads to (tokens were truncated to it)
  bool two_tower = false;
  size_t skipped = 0;    // rows left out (ReadOptions::skip_empty_images)
};

struct ReadOptions {
  int max_len = 0;          // truncate sequences to this (0 = the task's LRA length)
  size_t max_examples = 0;  // stop after this many (0 = all)
  // Pathfinder/Path-X: skip (and count in Dataset::skipped) zero-byte image
  // files, a known defect of the released Path-X data; otherwise an error.
  bool skip_empty_images = false;
};

// LRA sequence lengths.
constexpr int kListOpsLen = 2048;
constexpr int kTextLen = 4096;
constexpr int kRetrievalLen = 4000;  // per document
constexpr int kPathXSize = 128;

// --- ListOps -----------------------------------------------------------------
// TSV with a header "Source\tTarget"; Source is the bracketed expression
// ("( ( ( [MAX 2 ) 9 ) ] )"), Target its value 0..9. Parentheses are
// dropped (as in the LRA/S4 pipelines); the remaining tokens map to ids:
// digits 0-9 -> 0..9, [MIN 10, [MAX 11, [MED 12, [SM 13, ] 14 (vocab 15).
Dataset read_listops(const std::string& tsv_path, const ReadOptions& o = {});
// Token ids of one Source string ("what" names it in errors).
std::vector<uint8_t> listops_tokenize(const std::string& source, const std::string& what);
// Names of the 15 ListOps ids ("0".."9", "[MIN", "[MAX", "[MED", "[SM", "]").
const std::vector<std::string>& listops_vocab();

// --- Text --------------------------------------------------------------------
// Byte-level classification rows "<label>\t<text>" (optional header row
// "label\ttext"); the text is raw bytes up to the end of the line (a trailing
// \r is dropped). num_classes = max label + 1.
Dataset read_text_tsv(const std::string& tsv_path, const ReadOptions& o = {});
// The IMDB release layout: <split_dir>/neg/*.txt (label 0), pos/*.txt (label 1),
// files in name order.
Dataset read_imdb_dir(const std::string& split_dir, const ReadOptions& o = {});

// --- Retrieval -----------------------------------------------------------------
// AAN pairs TSV, no header: label \t id1 \t id2 \t text1 \t text2 (label 0/1,
// "1.0" accepted). Each document byte-level, truncated to max_len (4000).
Dataset read_retrieval(const std::string& tsv_path, const ReadOptions& o = {});
// The two-tower model's feature combination is libmamba's
// ops::pair_features_forward, used by SequenceModel's pair classifier.

// --- Image ---------------------------------------------------------------------
// CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (1024 R, G,
// B planes, row-major 32x32). Grayscale as LRA: round(0.2989 R + 0.5870 G +
// 0.1140 B), one token per pixel (L 1024, vocab 256).
Dataset read_cifar10(const std::vector<std::string>& batch_files, const ReadOptions& o = {});
// <dir>/data_batch_1..5.bin for "train", <dir>/test_batch.bin for "test".
std::vector<std::string> cifar10_files(const std::string& dir, const std::string& split);
// IDX image and label files (plain or gzip'd, read through zlib): images
// magic 0x00000803 (N, rows, cols) ubyte, labels 0x00000801 (N) ubyte.
// One token per pixel, L = rows*cols (784 for Fashion-MNIST).
Dataset read_idx(const std::string& images_path, const std::string& labels_path,
                 const ReadOptions& o = {});
// Fashion-MNIST as Debian ships it (/usr/share/datasets/fashion-mnist):
// split "train" or "test" (t10k).
Dataset read_fashion_mnist(const std::string& dir, const std::string& split,
                           const ReadOptions& o = {});
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// --- Pathfinder / Path-X -------------------------------------------------------
// The release layout under one difficulty directory (e.g.
// pathfinder32/curv_contour_length_14): metadata/<n>.npy are text files (in
// spite of the name), one line per image: "<imgdir> <file> <index> <label>
// ...", the image at <root>/<imgdir>/<file>, an 8-bit grayscale PNG.
// Metadata files are read in numeric order of <n>. All images must have one
// size (image_size if > 0, else the first image's); L = size*size.
Dataset read_pathfinder(const std::string& root, const ReadOptions& o = {}, int image_size = 0);

// 8-bit grayscale PNG I/O (libpng). read_png converts any PNG to 8-bit gray;
// throws mk::Error naming the file if it cannot be read.
struct GrayImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // (height, width) row-major
};
GrayImage read_png(const std::string& path);
void write_png(const std::string& path, const GrayImage& img);

// --- Splits --------------------------------------------------------------------
// Pathfinder ships without splits (S4 uses 80/10/10 of a shuffle): a
// deterministic shuffle (seeded) then contiguous val/test/train parts
// (pass an rvalue to avoid copying the examples).
struct Splits {
  Dataset train, val, test;
};
Splits split_dataset(Dataset d, double val_fraction, double test_fraction, uint64_t seed);

// --- ListOps generator -----------------------------------------------------------
// The published generator: a node is an operator (MIN, MAX, MED, SM = sum
// mod 10, uniformly) with probability op_prob while depth < max_depth, else a
// digit 0-9; operators take 2..max_args arguments; trees are kept when
// min_length < tokens < max_length (tokens = digits + operators + closing
// brackets, i.e. the sequence length once parentheses are dropped) and
// deduplicated. MED is the integer part of the median (mean of the two middle
// values for an even count).
struct ListOpsConfig {
  int max_depth = 10;
  int max_args = 10;
  int min_length = 500;   // exclusive
  int max_length = 2000;  // exclusive
  double op_prob = 0.25;
};
struct ListOpsExample {
  std::string source;  // in the published bracketed form
  int target = 0;      // the value, 0..9
  int length = 0;      // tokens without parentheses
};
// n distinct expressions, deterministic in seed.
std::vector<ListOpsExample> generate_listops(size_t n, const ListOpsConfig& cfg, uint64_t seed);
// Writes "Source\tTarget" TSV (the release format, \n line ends).
void write_listops_tsv(const std::string& path, const std::vector<ListOpsExample>& examples);
// Generates n_train + n_val + n_test distinct expressions and writes
// <dir>/basic_train.tsv, basic_val.tsv, basic_test.tsv (creates dir).
void write_listops_release(const std::string& dir, size_t n_train, size_t n_val, size_t n_test,
                           const ListOpsConfig& cfg, uint64_t seed);

// --- Pathfinder generator --------------------------------------------------------
// Two snakes of contour_length short segments (each segment_length pixels,
// turning by at most max_turn radians from the previous one), circular end
// markers, and distractor snakes without markers. Label 1: both markers at the
// ends of one snake; label 0: one marker on each snake. Objects keep at least
// one background pixel between each other (8-neighbourhood), so a marker
// reaches the other through drawn pixels iff the label is 1.
struct PathfinderConfig {
  int size = 32;
  int contour_length = 14;       // segments per snake (LRA hard split: 14)
  double segment_length = 2.5;   // pixels
  double max_turn = 0.5;         // radians per segment
  int num_distractors = 2;
  int distractor_length = 5;     // segments
  int marker_radius = 1;         // pixels (disc)
  int gap = 1;                   // background pixels kept between objects
  uint8_t intensity = 255;
  // Defaults scaled to an image size (16, 32, 64, 128, ...).
  static PathfinderConfig for_size(int size, int contour_length = 14);
};
struct PathfinderSample {
  GrayImage image;
  int label = 0;
  int marker_x[2] = {0, 0}, marker_y[2] = {0, 0};  // marker centres
};
// Sample `index` of the stream seeded by seed (deterministic, independent of
// other indices); the label is a fair coin per sample. Throws mk::Error if
// the snakes do not fit in the image.
PathfinderSample generate_pathfinder(const PathfinderConfig& cfg, uint64_t seed, uint64_t index);
// Writes n samples in the release layout under root: imgs/<b>/sample_<i>.png
// and metadata/<b>.npy ("imgs/<b> sample_<i>.png <i> <label> <contour_length>
// <num_distractors>"), per_dir images per batch directory <b>.
void write_pathfinder_release(const std::string& root, size_t n, const PathfinderConfig& cfg,
                              uint64_t seed, size_t per_dir = 1000);

}  // namespace mk::data::lra
