# main: the application (GNU Make build); the defaults are enough.
