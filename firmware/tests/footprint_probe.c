/* Not linked into anything: compiled for the target by `make lx106` so that nm(1) reports, as
 * the sizes of these arrays, the sizes the agent's memory is made of on that target (the agent
 * struct is private to agent.c, hence the include), in the profile it is compiled with. */
#include "../core/agent.c"

char espadmin_size_of_agent[sizeof(struct espadmin_agent)];
char espadmin_size_of_inbox_slot[sizeof(slot_t)];
char espadmin_size_of_inbox_slots[ESPADMIN_DEFAULT_INBOX_SLOTS];
char espadmin_size_of_command[sizeof(espadmin_command_t)]; /* without its values */
char espadmin_size_of_json_value[sizeof(ej_node_t)];
char espadmin_size_of_log_ring[ESPADMIN_DEFAULT_LOG_RING];
char espadmin_size_of_max_command[ESPADMIN_DEVICE_MAX_COMMAND];
