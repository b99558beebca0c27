"""`python -m pix2pitch_jax.demo`: the built-in demo (the same as the `pix2pitch-demo` command)."""

from pix2pitch_jax.demo.main import run

if __name__ == '__main__':
  run()
