#include "mixc.h"
int main(void) { return 0; }
