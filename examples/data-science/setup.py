from setuptools import find_packages, setup

setup(
    name="iris-classifier",
    version="0.1.0",
    description="Species classifier for the iris-like measurements in data/raw/",
    packages=find_packages(include=["src", "src.*"]),
    python_requires=">=3.10",
    install_requires=["numpy>=1.24"],
)
