from tiedae.cli import main

main()
