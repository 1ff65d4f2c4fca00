"""Pure numeric core: numpy and scipy only, never TensorFlow, Keras or KerasTuner."""
