// Boost.URL is compiled into this library from its sources (Boost 1.81 ships them with the
// headers; Debian packages the compiled library separately, which we do not need).
#include <boost/url/src.hpp>
