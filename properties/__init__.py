"""Property tests and the Hypothesis strategies they (and ``lstm-gradcheck search``) draw from."""
