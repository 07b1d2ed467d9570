# browser — minimal plus Debian's chromium and chromium-driver and fonts,
# for driving a headless browser (chromium --headless, selenium through
# chromedriver). Sourced by images/rootfs-debian.sh.
BASE=minimal
SIZE=6G
PKGS="chromium chromium-driver fonts-liberation fonts-dejavu-core fonts-noto-color-emoji"

tier_setup() {
	:
}
