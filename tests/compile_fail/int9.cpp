// Compiled by ctest: must fail to compile (B = 9 is outside 2…8), and must compile
// with -DLOWBIT_VALID_BITS so that the failure is the bit check and nothing else.
#include "lowbit/quant/format.hpp"

#ifdef LOWBIT_VALID_BITS
constexpr int kBits = 8;
#else
constexpr int kBits = 9;
#endif

int main() { return lowbit::Int<kBits>::qmax > 0 ? 0 : 1; }
