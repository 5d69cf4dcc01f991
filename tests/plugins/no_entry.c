/* A shared library without the entry function. */
int not_a_plugin(void) { return 1; }
