"""`python -m data_prep` is `python -m data_prep.build` (the console script `pix2pitch-prep`)."""

from data_prep import build

if __name__ == '__main__':
  build.run()
