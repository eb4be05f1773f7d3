"""The old home of localci/files.py and localci/state.py, kept so that executor modules import
unchanged while they are being reworked; new code imports from those two modules."""

from localci.files import (
    TMP_SUFFIX,
    LockBusy,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    remove_tree,
    state_error,
    temp_path_for,
    tree_fingerprint,
    user_cache_dir,
)
from localci.state import Store, project_builds_root

__all__ = [
    "TMP_SUFFIX",
    "LockBusy",
    "Store",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "project_builds_root",
    "remove_tree",
    "state_error",
    "temp_path_for",
    "tree_fingerprint",
    "user_cache_dir",
]
