"""The library's plumbing, free of the method: atomic files and manifests (`files`), one run per directory
(`locking`), stderr progress (`progress`), TensorBoard scalars (`summaries`), result tables and the naming of their
rows (`tables`), worker processes (`workers`) and tf.distribute strategies (`distribute`)."""
