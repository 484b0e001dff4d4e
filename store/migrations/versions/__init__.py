"""Migration scripts, oldest first by `down_revision`; never edit one that has shipped, add a new one."""
