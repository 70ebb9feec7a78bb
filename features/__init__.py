"""Preprocessing and hand-crafted features."""

import os

# MediaPipe's C++ logging writes a line per graph to stderr; keep the terminal for people.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
