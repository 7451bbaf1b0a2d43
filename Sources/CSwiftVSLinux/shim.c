// The module is the header; SwiftPM wants one source file for a C target.
#include "CSwiftVSLinux.h"
