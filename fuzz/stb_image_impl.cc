// stb_image compiled into the fuzz targets with coverage + sanitizers (the normal build links Debian's libstb.so,
// which libFuzzer cannot see into).
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
