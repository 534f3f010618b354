# The gallery is loaded by the doctor's tests as a user's files are (PATH:NAME), never collected:
# its torch modules would fail to import where the torch extra is missing.
collect_ignore_glob = ["*.py"]
