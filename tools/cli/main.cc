#include <cstdio>
#include "core/log.h"
int main() { oq::log::init(); OQ_INFO("onnxquant"); return 0; }
