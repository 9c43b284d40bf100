"""The backward keeps the gate pre-activation gradients in float32 inside otherwise float64 code.

On a float64 case every LSTM gradient (and x, h0, c0) is off by float32 roundoff, about 1e-9 to 1e-7 of its
scale; the loss and the head are right. The diagnosis must name the precision signature.
"""

from textbook_lstm import make_grads

grads = make_grads("float32_gate_buffer")
