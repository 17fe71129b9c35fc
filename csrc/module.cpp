// The Python module vllm_forge._C is empty: importing it loads this library, whose
// static initialisers register every op with torch. No pybind, so one abi3 build
// serves every Python >= 3.9.
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module = {
      PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr, nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module);
}
