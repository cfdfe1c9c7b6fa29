/* Stands in for PyTorch's header of this name: c10_shim.h. */
#include "../../c10_shim.h"
