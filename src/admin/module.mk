# src/admin: the status page's files become C arrays (xxd -i) that
# status_page.c includes from $(BUILD)/gen/src/admin/.

$(BUILD)/gen/src/admin/%.inc: src/admin/%
	@mkdir -p $(dir $@)
	xxd -i <$< >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/src/admin/status_page.o: $(addprefix $(BUILD)/gen/src/admin/,status.html.inc status.js.inc status.css.inc)
