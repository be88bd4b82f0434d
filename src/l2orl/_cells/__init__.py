from ._base import (
    AbstractCell as AbstractCell,
    AbstractStatelessCell as AbstractStatelessCell,
    autodiff_rows_vjp as autodiff_rows_vjp,
    vmapped_rows as vmapped_rows,
)
from ._feedforward import LinearCell as LinearCell, MLPCell as MLPCell
from ._ode import ODECell as ODECell
from ._recurrent import GRUCell as GRUCell, LSTMCell as LSTMCell
