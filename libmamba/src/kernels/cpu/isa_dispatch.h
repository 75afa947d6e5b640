// Internal: choosing among the per-ISA copies of a kernel table (the scan,
// the activations; each copy compiled with its own flags, see
// libmamba/CMakeLists.txt) by what mk::active_isa() chose.
#pragma once

#include "mambakit/cpu_isa.h"

namespace mk::ops {

// The getters, not the tables, are passed: only the chosen copy's code runs
// (a table of a copy the CPU lacks may be built with its instructions).
template <class Table>
const Table& active_isa_table(const Table& (*scalar)(), const Table& (*avx2)(),
                              const Table& (*avx512)()) {
  switch (active_isa()) {
    case Isa::avx512:
      return avx512();
    case Isa::avx2:
      return avx2();
    default:
      return scalar();
  }
}

}  // namespace mk::ops
