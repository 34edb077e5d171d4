"""The hooks fit calls, and CallbackList, which calls them on every callback that has them.

A callback is any object with some of these methods (Keras' names); fit calls each at its
moment, in the order of fit's list:

    on_train_begin(model, history)       history: the rows so far (a resumed run's)
    on_epoch_begin(epoch, model)
    on_backward_end(step, logs, model)   gradients computed, the step not taken yet;
                                         logs: step, size, loss, hits of this batch
    on_train_batch_end(step, logs)       after the optimizer step; logs also has lr, and
                                         sums: the epoch so far (loop.EpochSums)
    on_epoch_end(epoch, logs, model)     logs: the epoch's history row; True: stop
    on_train_end(model, history)         when fit returns or raises

A callback with a `stopped` attribute that is True after on_train_begin (EarlyStopping in a
resumed run that had stopped) ends the run before its first epoch.
"""


class CallbackList:
    """Calls a hook on every callback that defines it; `say` reports stopping (or None)."""

    def __init__(self, callbacks, say=None):
        self.callbacks, self.say = list(callbacks), say or (lambda *a: None)

    def _call(self, hook, *args):
        return [getattr(cb, hook)(*args) for cb in self.callbacks if hasattr(cb, hook)]

    def on_train_begin(self, model, history):
        self._call("on_train_begin", model, history)

    def stopped(self, history):
        """True when a callback says the run had stopped already (a resumed, finished run)."""
        if not history or not any(getattr(cb, "stopped", False) for cb in self.callbacks):
            return False
        self.say(f"the run had already stopped early after epoch {history[-1]['epoch']}")
        return True

    def on_epoch_begin(self, epoch, model):
        self._call("on_epoch_begin", epoch, model)

    def on_backward_end(self, step, logs, model):
        self._call("on_backward_end", step, logs, model)

    def on_train_batch_end(self, step, logs):
        self._call("on_train_batch_end", step, logs)

    def on_epoch_end(self, epoch, logs, model):
        stop = any([bool(stop) for stop in self._call("on_epoch_end", epoch, logs, model)])
        if stop:
            self.say(f"stopping early after epoch {epoch}")
        return stop

    def on_train_end(self, model, history):
        self._call("on_train_end", model, history)
