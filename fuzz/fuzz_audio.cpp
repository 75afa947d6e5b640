// Audio through libsndfile (WAV, FLAC, AIFF, AU, OGG, ... whatever the file
// says it is): the header (audio_info) and the decoded, down-mixed samples
// (read_audio), resampled to 16 kHz when the file is short.
#include "fuzz_common.h"
#include "mambakit/datasets/audio.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // libsndfile sniffs the format from the bytes; the name only matters for
  // headerless formats, which it refuses without SF_INFO.
  const std::string path = fuzz::write_file("audio.wav", data, size);
  try {
    const mk::data::AudioInfo info = mk::data::audio_info(path);
    (void)info.seconds();
    mk::data::AudioReadOptions opts;
    opts.sample_rate = 0;  // the file's own rate: decoding only
    const std::vector<float> x = mk::data::read_audio(path, opts);
    (void)mk::data::quantize(x, mk::data::Quantization::MuLaw);
    if (x.size() <= 4096) {
      opts.sample_rate = 16000;
      opts.quality = mk::data::ResampleQuality::Fastest;
      (void)mk::data::read_audio(path, opts);
    }
  } catch (const mk::Error& e) {
    fuzz::expect_error(e, path);
  }
  return 0;
}
