/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target: the configuration parser. Input: the text of a vccid.conf. */
#include <stdint.h>
#include <string.h>

#include "corelib/config.h"
#include "fuzz-log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vccid_config *config;
	size_t i;

	fuzz_enable_logging();
	config = vccid_config_load_data((const char *)data, size, "fuzz");
	if (config == NULL)
		return 0;
	for (i = 0; i < config->n_cards; i++) {
		const struct vccid_card_config *card = &config->cards[i];
		const struct vccid_reader_config *reader = vccid_config_find_reader(config, card->reader);

		/* Every accepted card fits its reader and names 3 certificates. */
		if (reader == NULL || card->slot >= reader->slots || card->certs[2] == NULL)
			__builtin_trap();
	}
	vccid_config_free(config);
	return 0;
}
